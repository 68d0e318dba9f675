-- 004: record each network's initialisation seed.
-- Networks now train as members of stacked fits (one Keras model holding G copies); each member
-- starts from the registry network's initialisation under its own seed. NULL for the baselines,
-- and for rows written before this migration.

ALTER TABLE models ADD COLUMN seed INTEGER;
ALTER TABLE backtest_predictions ADD COLUMN seed INTEGER;
