-- 003: rolling-origin backtests beside the monthly retrains.
-- A backtest is a run of kind 'backtest': it writes backtest_predictions, metrics rows with
-- split = 'backtest' and comparisons, all in the one transaction that inserts its runs row.

ALTER TABLE runs ADD COLUMN kind VARCHAR NOT NULL DEFAULT 'retrain';

CREATE TABLE backtest_predictions (
    run_id        VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    origin_month  DATE NOT NULL,             -- last month of data the model saw
    target_month  DATE NOT NULL,             -- the month it forecast (origin + 1)
    actual        DOUBLE NOT NULL,
    predicted     DOUBLE NOT NULL,
    train_seconds DOUBLE NOT NULL,           -- 0 when the model was reused without training
    fit           VARCHAR NOT NULL CHECK (fit IN ('scratch', 'warm', 'reused')),
    PRIMARY KEY (run_id, model, target_month)
);

-- Diebold–Mariano tests (squared error, HLN correction) of a model against a baseline.
CREATE TABLE comparisons (
    run_id    VARCHAR NOT NULL,
    model     VARCHAR NOT NULL,
    baseline  VARCHAR NOT NULL,
    split     VARCHAR NOT NULL,
    dm_stat   DOUBLE,                        -- NULL when undefined (n < 2, identical errors)
    dm_pvalue DOUBLE,
    n         INTEGER NOT NULL,
    PRIMARY KEY (run_id, model, baseline, split)
);

-- Only monthly retrains make the leaderboard (and so latest_forecasts).
CREATE OR REPLACE VIEW leaderboard AS
WITH latest AS (
    SELECT run_id FROM runs
    WHERE status = 'completed' AND kind = 'retrain'
    ORDER BY finished_at DESC, run_id DESC
    LIMIT 1
)
SELECT
    rank() OVER (ORDER BY m.rmse) AS rank,
    m.model, m.rmse, m.mae, m.mape, m.mase, m.theil_u2, m.directional_accuracy, m.n,
    m.run_id
FROM metrics AS m
JOIN latest USING (run_id)
WHERE m.split = 'test'
ORDER BY rank, m.model;

-- The latest completed backtest: metrics, the DM test against naive, and training time.
CREATE VIEW backtest_leaderboard AS
WITH latest AS (
    SELECT run_id FROM runs
    WHERE status = 'completed' AND kind = 'backtest'
    ORDER BY finished_at DESC, run_id DESC
    LIMIT 1
),
seconds AS (
    SELECT run_id, model, sum(train_seconds) AS train_seconds
    FROM backtest_predictions
    GROUP BY run_id, model
)
SELECT
    rank() OVER (ORDER BY m.rmse) AS rank,
    m.model, m.rmse, m.mae, m.theil_u2, m.directional_accuracy, m.n,
    c.dm_stat, c.dm_pvalue, s.train_seconds, m.run_id
FROM metrics AS m
JOIN latest USING (run_id)
LEFT JOIN comparisons AS c
    ON c.run_id = m.run_id AND c.model = m.model AND c.split = m.split AND c.baseline = 'naive'
LEFT JOIN seconds AS s ON s.run_id = m.run_id AND s.model = m.model
WHERE m.split = 'backtest'
ORDER BY rank, m.model;
