-- 010: every attempt that can write leaves a runs row with its outcome and the reason.
-- status: running, completed, failed (an error: `error` and `reason` hold it), unchanged
-- (the data and parameters of the last completed run: nothing to do) or invalid (settings
-- the data make impossible, e.g. an --evaluate-from outside the series). Before 010 the
-- last two left no row. DuckDB cannot change a CHECK constraint in place, so the table is
-- rebuilt (views that read it bind again by name).
CREATE TABLE runs_010 (
    run_id      VARCHAR PRIMARY KEY,
    flow_run_id VARCHAR,
    status      VARCHAR NOT NULL
                CHECK (status IN ('running', 'completed', 'failed', 'unchanged', 'invalid')),
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    snapshot_id VARCHAR,
    params      JSON NOT NULL,
    error       VARCHAR,                       -- a failed run's error message
    kind        VARCHAR NOT NULL DEFAULT 'retrain',
    reason      VARCHAR                        -- why a run did not complete, in one line
);
INSERT INTO runs_010
SELECT run_id, flow_run_id, status, started_at, finished_at, snapshot_id, params, error, kind,
       error
FROM runs;
DROP TABLE runs;
ALTER TABLE runs_010 RENAME TO runs;
