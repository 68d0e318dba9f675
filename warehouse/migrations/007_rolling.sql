-- 007: the rolling-origin evaluation of every monthly run (tasks/rolling.py).
-- Origins every --refit-every months from --evaluate-from; at each origin every model is
-- fitted on the windows whose targets are <= it and forecasts 1 … H months from every month
-- until the next origin. Bands come from earlier errors only (tasks/calibrate.py).

-- comparisons gets a horizon: the rolling Diebold–Mariano tests are per horizon (lag h - 1).
-- Earlier rows are one-month tests: horizon 1. DuckDB cannot change a primary key in place,
-- so the table is rebuilt (views that read it bind again by name).
CREATE TABLE comparisons_007 (
    run_id    VARCHAR NOT NULL,
    model     VARCHAR NOT NULL,
    baseline  VARCHAR NOT NULL,
    split     VARCHAR NOT NULL,                -- test, backtest or rolling
    horizon   INTEGER NOT NULL DEFAULT 1 CHECK (horizon >= 1),
    dm_stat   DOUBLE,
    dm_pvalue DOUBLE,
    n         INTEGER NOT NULL,
    PRIMARY KEY (run_id, model, baseline, split, horizon)
);
INSERT INTO comparisons_007
SELECT run_id, model, baseline, split, 1, dm_stat, dm_pvalue, n FROM comparisons;
DROP TABLE comparisons;
ALTER TABLE comparisons_007 RENAME TO comparisons;

-- Every rolling forecast whose target month has arrived.
CREATE TABLE rolling_predictions (
    run_id         VARCHAR NOT NULL,
    model          VARCHAR NOT NULL,
    origin_month   DATE NOT NULL,              -- last target month the weights saw
    forecast_month DATE NOT NULL,              -- t: the window's last month
    horizon        INTEGER NOT NULL CHECK (horizon >= 1),
    target_month   DATE NOT NULL,              -- t + horizon
    point          DOUBLE NOT NULL,
    lower_80       DOUBLE,                     -- NULL during the bands' warm-up
    upper_80       DOUBLE,
    lower_95       DOUBLE,
    upper_95       DOUBLE,
    actual         DOUBLE NOT NULL,
    PRIMARY KEY (run_id, model, forecast_month, horizon)
);

-- Per model and horizon over the rolling months.
CREATE TABLE rolling_metrics (
    run_id            VARCHAR NOT NULL,
    model             VARCHAR NOT NULL,
    horizon           INTEGER NOT NULL CHECK (horizon >= 1),
    n                 INTEGER NOT NULL,
    rmse              DOUBLE NOT NULL,
    mae               DOUBLE NOT NULL,
    theil_u2          DOUBLE,                  -- against naive at the same horizon
    coverage_80       DOUBLE,                  -- share of banded months inside the band
    coverage_95       DOUBLE,
    interval_score_80 DOUBLE,                  -- Winkler, index points
    interval_score_95 DOUBLE,
    width_95          DOUBLE,                  -- mean (upper_95 - lower_95) / point
    PRIMARY KEY (run_id, model, horizon)
);

-- Each run's champion per horizon: lowest rolling RMSE among models with theil_u2 < 1.
CREATE TABLE rolling_champions (
    run_id    VARCHAR NOT NULL,
    horizon   INTEGER NOT NULL CHECK (horizon >= 1),
    model     VARCHAR NOT NULL,
    rmse      DOUBLE NOT NULL,
    dm_pvalue DOUBLE,                          -- against naive at that horizon; NULL for naive
    PRIMARY KEY (run_id, horizon)
);

-- The latest completed monthly run's champion per horizon.
CREATE OR REPLACE VIEW champions AS
SELECT c.run_id, c.horizon, c.model, c.rmse, c.dm_pvalue
FROM rolling_champions AS c
WHERE c.run_id = (
    SELECT run_id FROM runs
    WHERE status = 'completed' AND kind = 'retrain'
    ORDER BY finished_at DESC, run_id DESC LIMIT 1
)
ORDER BY c.horizon;
