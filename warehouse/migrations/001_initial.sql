-- 001: the warehouse contract of the monthly-retrain flow.
-- Times are UTC. Every row a run writes carries its run_id.

CREATE TABLE snapshots (
    snapshot_id VARCHAR PRIMARY KEY,          -- sha256 of the downloaded bytes
    source      VARCHAR NOT NULL,
    fetched_at  TIMESTAMP NOT NULL,
    n_rows      INTEGER NOT NULL,
    first_month DATE NOT NULL,
    last_month  DATE NOT NULL
);

CREATE TABLE prices (
    snapshot_id VARCHAR NOT NULL,
    month       DATE NOT NULL,
    close       DOUBLE NOT NULL,
    PRIMARY KEY (snapshot_id, month)
);

CREATE TABLE runs (
    run_id      VARCHAR PRIMARY KEY,
    flow_run_id VARCHAR,
    status      VARCHAR NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    snapshot_id VARCHAR,
    params      JSON NOT NULL,
    error       VARCHAR
);

CREATE TABLE models (
    run_id          VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    n_params        INTEGER NOT NULL,
    epochs          INTEGER NOT NULL,
    train_seconds   DOUBLE NOT NULL,
    artifact_path   VARCHAR,                  -- NULL for the baselines, which have no weights
    artifact_sha256 VARCHAR,
    PRIMARY KEY (run_id, model)
);

CREATE TABLE metrics (
    run_id               VARCHAR NOT NULL,
    model                VARCHAR NOT NULL,
    split                VARCHAR NOT NULL,
    rmse                 DOUBLE NOT NULL,
    mae                  DOUBLE NOT NULL,
    mape                 DOUBLE NOT NULL,    -- percent
    mase                 DOUBLE NOT NULL,
    theil_u2             DOUBLE NOT NULL,
    directional_accuracy DOUBLE NOT NULL,
    n                    INTEGER NOT NULL,
    PRIMARY KEY (run_id, model, split)
);

CREATE TABLE predictions (
    run_id    VARCHAR NOT NULL,
    model     VARCHAR NOT NULL,
    month     DATE NOT NULL,
    actual    DOUBLE NOT NULL,
    predicted DOUBLE NOT NULL,
    PRIMARY KEY (run_id, model, month)
);

CREATE TABLE forecasts (
    run_id       VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    target_month DATE NOT NULL,
    horizon      INTEGER NOT NULL,
    point        DOUBLE NOT NULL,
    lower_80     DOUBLE NOT NULL,
    upper_80     DOUBLE NOT NULL,
    lower_95     DOUBLE NOT NULL,
    upper_95     DOUBLE NOT NULL,
    PRIMARY KEY (run_id, model, target_month, horizon)
);

CREATE TABLE validation_failures (
    run_id       VARCHAR NOT NULL,
    check_name   VARCHAR NOT NULL,
    column_name  VARCHAR,
    failure_case VARCHAR,
    row_index    BIGINT                        -- 0-based data row, NULL for whole-table checks
);

-- The latest completed run's test metrics, best RMSE first.
CREATE VIEW leaderboard AS
WITH latest AS (
    SELECT run_id FROM runs
    WHERE status = 'completed'
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

-- Next-month forecasts of the latest completed run, in leaderboard order.
CREATE VIEW latest_forecasts AS
SELECT
    l.rank, f.model, f.target_month, f.horizon, f.point,
    f.lower_80, f.upper_80, f.lower_95, f.upper_95, f.run_id
FROM forecasts AS f
JOIN leaderboard AS l ON l.run_id = f.run_id AND l.model = f.model
ORDER BY l.rank, f.model;
