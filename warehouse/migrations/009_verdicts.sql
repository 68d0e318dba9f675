-- 009: coverage with its uncertainty, and one verdict per horizon (the lesson's rule).

-- A 90 % interval for each rolling coverage: a stationary block bootstrap over the banded
-- forecast months (mean block length at least h months; tasks/evaluation/calibrate.py).
ALTER TABLE rolling_metrics ADD COLUMN coverage_80_low DOUBLE;
ALTER TABLE rolling_metrics ADD COLUMN coverage_80_high DOUBLE;
ALTER TABLE rolling_metrics ADD COLUMN coverage_95_low DOUBLE;
ALTER TABLE rolling_metrics ADD COLUMN coverage_95_high DOUBLE;

-- The champion per horizon is now the cheapest kept model (tasks/evaluation/choose.py):
-- best_model has the lowest rolling RMSE at h; a model is kept unless the one-sided
-- Diebold-Mariano test says it is worse than best_model at 10 %; the champion (model) is
-- the kept model with the fewest trainable parameters. Rows written before 009 keep NULLs.
ALTER TABLE rolling_champions ADD COLUMN best_model VARCHAR;
ALTER TABLE rolling_champions ADD COLUMN kept VARCHAR;              -- comma-separated, cheapest first
ALTER TABLE rolling_champions ADD COLUMN dm_pvalue_vs_best DOUBLE;  -- champion vs best, one-sided

CREATE OR REPLACE VIEW champions AS
SELECT c.run_id, c.horizon, c.model, c.rmse, c.dm_pvalue, c.best_model, c.kept, c.dm_pvalue_vs_best
FROM rolling_champions AS c
WHERE c.run_id = (
    SELECT run_id FROM runs
    WHERE status = 'completed' AND kind = 'retrain'
    ORDER BY finished_at DESC, run_id DESC LIMIT 1
)
ORDER BY c.horizon;
