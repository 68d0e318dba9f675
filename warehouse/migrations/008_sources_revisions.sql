-- 008: sources tried in order, and past months a provider revised.

-- The sources tried before the one that answered, and why each was passed over:
-- one "source: reason" per line; NULL when the first source answered.
ALTER TABLE snapshots ADD COLUMN passed_over VARCHAR;

-- Months of the run's validated series whose close differs (relative change beyond 1e-9)
-- from the snapshot of the previous completed monthly run, `since_run_id`.
CREATE TABLE revisions (
    run_id          VARCHAR NOT NULL,
    month           DATE NOT NULL,
    previous_close  DOUBLE NOT NULL,
    close           DOUBLE NOT NULL,
    relative_change DOUBLE NOT NULL,          -- close / previous_close - 1
    since_run_id    VARCHAR NOT NULL,
    PRIMARY KEY (run_id, month)
);

-- The scorecard still scores against the latest close of each month, and now says whether
-- that month's close was ever revised by a completed run.
CREATE OR REPLACE VIEW forecast_scorecard AS
SELECT
    f.run_id, f.model, f.target_month, f.horizon, f.point,
    a.close AS actual,
    a.close - f.point AS error,
    abs(a.close - f.point) / a.close * 100 AS abs_pct_error,
    a.close BETWEEN f.lower_80 AND f.upper_80 AS inside_80,
    a.close BETWEEN f.lower_95 AND f.upper_95 AS inside_95,
    f.lower_80, f.upper_80, f.lower_95, f.upper_95,
    a.snapshot_id AS scored_with_snapshot,
    EXISTS (
        SELECT 1 FROM revisions AS v
        JOIN runs AS rr ON rr.run_id = v.run_id AND rr.status = 'completed'
        WHERE v.month = f.target_month
    ) AS actual_revised
FROM forecasts AS f
JOIN runs AS r ON r.run_id = f.run_id AND r.status = 'completed'
JOIN latest_prices AS a ON a.month = f.target_month
ORDER BY f.target_month, f.model, f.run_id;
