-- 005: seed ensembles, forecast fits on all the data, and checked intervals.
-- A network now trains N members (seeds seed … seed+N-1). metrics, predictions and
-- forecasts hold the ensemble (the mean of its members' price forecasts); seed_metrics
-- holds every member. Each model is fitted twice per run: role 'evaluation' on the
-- training split (scored on the test split) and role 'forecast' on every window (next
-- month's forecast comes from it).

CREATE TABLE seed_metrics (
    run_id   VARCHAR NOT NULL,
    model    VARCHAR NOT NULL,
    seed     INTEGER NOT NULL,
    split    VARCHAR NOT NULL,
    rmse     DOUBLE NOT NULL,
    mae      DOUBLE NOT NULL,
    theil_u2 DOUBLE NOT NULL,
    PRIMARY KEY (run_id, model, seed, split)
);

-- models: one row per model, role and seed (seed NULL for the baselines). Rows written
-- before this migration are evaluation fits whose trained_through was not recorded.
CREATE TABLE models_v5 (
    run_id          VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    role            VARCHAR NOT NULL CHECK (role IN ('evaluation', 'forecast')),
    seed            INTEGER,
    trained_through DATE,                     -- last target month the fit saw
    n_params        INTEGER NOT NULL,
    epochs          INTEGER NOT NULL,
    train_seconds   DOUBLE NOT NULL,          -- the whole ensemble's fit, on each of its rows
    artifact_path   VARCHAR,                  -- this member's .keras file; NULL for baselines
    artifact_sha256 VARCHAR,
    UNIQUE (run_id, model, role, seed)
);
INSERT INTO models_v5
SELECT run_id, model, 'evaluation', seed, NULL, n_params, epochs, train_seconds,
       artifact_path, artifact_sha256
FROM models;
DROP TABLE models;
ALTER TABLE models_v5 RENAME TO models;

-- Each backtest origin's 80 % and 95 % bands, built as the monthly run builds them.
ALTER TABLE backtest_predictions ADD COLUMN lower_80 DOUBLE;
ALTER TABLE backtest_predictions ADD COLUMN upper_80 DOUBLE;
ALTER TABLE backtest_predictions ADD COLUMN lower_95 DOUBLE;
ALTER TABLE backtest_predictions ADD COLUMN upper_95 DOUBLE;

-- The test-split leaderboard of every completed monthly run, with the seeds' spread and the
-- Diebold–Mariano test against naive. `leaderboard` is its latest run; `sp500 report
-- --run` reads any run from it.
CREATE VIEW run_leaderboard AS
WITH spread AS (
    SELECT run_id, model, count(*) AS seeds, stddev_samp(rmse) AS rmse_std,
        min(rmse) AS rmse_min, max(rmse) AS rmse_max
    FROM seed_metrics
    WHERE split = 'test'
    GROUP BY run_id, model
)
SELECT
    rank() OVER (PARTITION BY m.run_id ORDER BY m.rmse) AS rank,
    m.model, m.rmse, m.mae, m.mape, m.mase, m.theil_u2, m.directional_accuracy, m.n,
    coalesce(s.seeds, 0) AS seeds, s.rmse_std, s.rmse_min, s.rmse_max,
    c.dm_stat, c.dm_pvalue,
    m.run_id
FROM metrics AS m
JOIN runs AS r ON r.run_id = m.run_id AND r.status = 'completed' AND r.kind = 'retrain'
LEFT JOIN spread AS s ON s.run_id = m.run_id AND s.model = m.model
LEFT JOIN comparisons AS c
    ON c.run_id = m.run_id AND c.model = m.model AND c.split = 'test' AND c.baseline = 'naive'
WHERE m.split = 'test';

CREATE OR REPLACE VIEW leaderboard AS
WITH latest AS (
    SELECT run_id FROM runs
    WHERE status = 'completed' AND kind = 'retrain'
    ORDER BY finished_at DESC, run_id DESC
    LIMIT 1
)
SELECT l.* FROM run_leaderboard AS l JOIN latest USING (run_id)
ORDER BY l.rank, l.model;

-- The backtest leaderboard gains the share of months inside each band.
CREATE OR REPLACE VIEW backtest_leaderboard AS
WITH latest AS (
    SELECT run_id FROM runs
    WHERE status = 'completed' AND kind = 'backtest'
    ORDER BY finished_at DESC, run_id DESC
    LIMIT 1
),
per_model AS (
    SELECT run_id, model, sum(train_seconds) AS train_seconds,
        avg((actual BETWEEN lower_80 AND upper_80)::INTEGER) AS coverage_80,
        avg((actual BETWEEN lower_95 AND upper_95)::INTEGER) AS coverage_95
    FROM backtest_predictions
    GROUP BY run_id, model
)
SELECT
    rank() OVER (ORDER BY m.rmse) AS rank,
    m.model, m.rmse, m.mae, m.theil_u2, m.directional_accuracy, m.n,
    c.dm_stat, c.dm_pvalue, s.train_seconds, s.coverage_80, s.coverage_95,
    m.run_id
FROM metrics AS m
JOIN latest USING (run_id)
LEFT JOIN comparisons AS c
    ON c.run_id = m.run_id AND c.model = m.model AND c.split = m.split AND c.baseline = 'naive'
LEFT JOIN per_model AS s ON s.run_id = m.run_id AND s.model = m.model
WHERE m.split = 'backtest'
ORDER BY rank, m.model;
