-- 006: forecasts for months T+1 … T+H (sp500 run --horizon, default 12).
-- forecasts already had a horizon column; a run now writes one row per model and horizon.
-- Month T+h is forecast recursively (each model's own forecasts fed back as the newest
-- closes) and its bands come from the evaluation fit's h-step errors over the test split.

-- Test accuracy of those recursive forecasts at each horizon: the numbers behind the bands.
CREATE TABLE horizon_metrics (
    run_id   VARCHAR NOT NULL,
    model    VARCHAR NOT NULL,
    split    VARCHAR NOT NULL,
    horizon  INTEGER NOT NULL CHECK (horizon >= 1),
    rmse     DOUBLE NOT NULL,
    mae      DOUBLE NOT NULL,
    theil_u2 DOUBLE,                          -- against naive's flat path at the same horizon
    n        INTEGER NOT NULL,                -- forecasts whose target is in the split
    PRIMARY KEY (run_id, model, split, horizon)
);

-- The latest run's forecasts in leaderboard order, each model's months in order.
CREATE OR REPLACE VIEW latest_forecasts AS
SELECT
    l.rank, f.model, f.target_month, f.horizon, f.point,
    f.lower_80, f.upper_80, f.lower_95, f.upper_95, f.run_id
FROM forecasts AS f
JOIN leaderboard AS l ON l.run_id = f.run_id AND l.model = f.model
ORDER BY l.rank, f.model, f.horizon;
