-- 002: score stored forecasts against prices that arrived later, and track models over runs.

-- The most recent close of each month across all stored snapshots.
CREATE VIEW latest_prices AS
SELECT p.month, arg_max(p.close, s.fetched_at) AS close, arg_max(s.snapshot_id, s.fetched_at)
    AS snapshot_id
FROM prices AS p
JOIN snapshots AS s USING (snapshot_id)
GROUP BY p.month;

-- Every forecast of a completed run whose target month has since appeared in the data.
CREATE VIEW forecast_scorecard AS
SELECT
    f.run_id, f.model, f.target_month, f.horizon, f.point,
    a.close AS actual,
    a.close - f.point AS error,
    abs(a.close - f.point) / a.close * 100 AS abs_pct_error,
    a.close BETWEEN f.lower_80 AND f.upper_80 AS inside_80,
    a.close BETWEEN f.lower_95 AND f.upper_95 AS inside_95,
    f.lower_80, f.upper_80, f.lower_95, f.upper_95,
    a.snapshot_id AS scored_with_snapshot
FROM forecasts AS f
JOIN runs AS r ON r.run_id = f.run_id AND r.status = 'completed'
JOIN latest_prices AS a ON a.month = f.target_month
ORDER BY f.target_month, f.model, f.run_id;

-- Test RMSE and theil_u2 of each model across completed runs, oldest first (drift watching).
CREATE VIEW model_history AS
SELECT
    m.model, r.run_id, r.finished_at, s.last_month AS data_through, m.split,
    m.rmse, m.mae, m.theil_u2, m.n
FROM metrics AS m
JOIN runs AS r ON r.run_id = m.run_id AND r.status = 'completed'
LEFT JOIN snapshots AS s ON s.snapshot_id = r.snapshot_id
ORDER BY m.model, r.finished_at;
