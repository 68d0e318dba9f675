"""Thin Prefect tasks over ``warehouse.store``: run bookkeeping and the final write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.data.ingest import Fetched
from tasks.evaluation.evaluate import Evaluation
from tasks.evaluation.forecast import Forecast
from tasks.evaluation.rolling import RollingResults
from tasks.models.train import TrainedModel
from warehouse import store


@task(name="migrate_warehouse", cache_policy=NO_CACHE)
def migrate_warehouse(path: Path) -> int:
    """Apply pending migrations and return the schema version."""
    version = store.migrate(path)
    get_run_logger().info("warehouse %s at schema version %d", path, version)
    return version


@task(name="recover_crashed_runs", cache_policy=NO_CACHE)
def recover_crashed_runs(path: Path, models_dir: Path, run_id: str) -> list[str]:
    """Mark runs a dead process left ``running`` as failed and drop their saved models."""
    crashed = store.recover_crashed_runs(path, run_id)
    for old in crashed:
        shutil.rmtree(models_dir / old, ignore_errors=True)
        get_run_logger().warning("run %s had crashed; marked failed", old)
    return crashed


@task(name="record_run_start", cache_policy=NO_CACHE)
def record_run_start(
    path: Path, run_id: str, flow_run_id: str | None, params: dict[str, object], kind: str
) -> None:
    """Insert the ``running`` row before anything else is written."""
    store.start_run(path, run_id, flow_run_id, params, kind)


@task(name="find_unchanged_run", cache_policy=NO_CACHE)
def find_unchanged_run(path: Path, snapshot_id: str, params: dict[str, object]) -> str | None:
    """Run id of the last completed run if it used the same snapshot and parameters."""
    previous = store.last_completed_run(path)
    if previous and previous.snapshot_id == snapshot_id and previous.params == params:
        return previous.run_id
    return None


@task(name="close_run", cache_policy=NO_CACHE)
def close_run(
    path: Path,
    run_id: str,
    status: str,
    reason: str,
    artifact_dir: Path,
    snapshot_id: str | None = None,
) -> None:
    """Record a run that ends without results (``unchanged``, ``invalid``) and drop its models."""
    shutil.rmtree(artifact_dir, ignore_errors=True)
    store.close_run(path, run_id, status, reason, snapshot_id)
    get_run_logger().info("run %s: %s (%s)", run_id, status, reason)


@task(name="record_run_failure", cache_policy=NO_CACHE)
def record_run_failure(
    path: Path, run_id: str, error: str, failures: pd.DataFrame | None, artifact_dir: Path
) -> None:
    """Mark the run failed, keep its validation failures, drop its saved models."""
    shutil.rmtree(artifact_dir, ignore_errors=True)
    store.fail_run(path, run_id, error, failures)


def stored_path(path: Path, root: Path | None) -> str:
    """``path`` as ``models.artifact_path`` stores it.

    Relative to ``root`` (the warehouse's folder) when it lies inside it, so the folder can
    move; absolute otherwise.
    """
    absolute = path.resolve()
    if root is not None and absolute.is_relative_to(root.resolve()):
        return absolute.relative_to(root.resolve()).as_posix()
    return str(absolute)


def model_rows(model: TrainedModel, root: Path | None = None) -> list[dict[str, object]]:
    """The ``models`` rows of one fit: one per seed (one row with seed NULL for a baseline).

    ``artifact_path`` is relative to ``root`` (the warehouse's folder) where it can be.
    """
    common = {
        "model": model.name,
        "role": model.role,
        "trained_through": model.trained_through,
        "n_params": model.n_params,
        "epochs": model.epochs,
        "train_seconds": model.train_seconds,
    }
    if not model.seeds:
        return [{**common, "seed": None, "artifact_path": None, "artifact_sha256": None}]
    rows = []
    for seed in model.seeds:
        path, sha = model.artifacts.get(seed, (None, None))
        rows.append(
            {
                **common,
                "seed": seed,
                "artifact_path": stored_path(path, root) if path else None,
                "artifact_sha256": sha,
            }
        )
    return rows


def passed_over_text(fetched: Fetched) -> str | None:
    """The sources passed over before the one that answered, "source: reason" per line."""
    return "\n".join(f"{source}: {reason}" for source, reason in fetched.passed_over) or None


def build_output(
    run_id: str,
    fetched: Fetched,
    models: list[TrainedModel],
    evaluations: list[Evaluation],
    forecasts: list[Forecast],
    comparisons: pd.DataFrame,
    rolling: RollingResults | None = None,
    revisions: pd.DataFrame | None = None,
    artifact_root: Path | None = None,
) -> store.RunOutput:
    """Gather a run's results into the frames the warehouse stores.

    ``artifact_root``: the warehouse's folder; saved models are stored relative to it.
    """
    download, prices = fetched.download, fetched.prices
    extra = {} if revisions is None else {"revisions": revisions}
    if rolling is not None:
        comparisons = pd.concat([comparisons, rolling.comparisons], ignore_index=True)
        extra |= {
            "rolling_predictions": rolling.predictions,
            "rolling_metrics": rolling.metrics,
            "rolling_champions": rolling.champions,
        }
    seed_metrics = [
        e.seed_metrics.assign(model=e.model, split="test")
        for e in evaluations
        if len(e.seed_metrics)
    ]
    return store.RunOutput(
        run_id=run_id,
        snapshot_id=download.sha256,
        source=download.source,
        fetched_at=download.fetched_at,
        prices=prices[["month", "close"]],
        passed_over=passed_over_text(fetched),
        models=pd.DataFrame(
            [row for m in models for row in model_rows(m, artifact_root)],
            columns=store.TABLE_COLUMNS["models"],
        ),
        metrics=pd.DataFrame(
            [{"model": e.model, "split": "test", **e.metrics} for e in evaluations]
        ),
        predictions=pd.concat(
            [e.predictions.assign(model=e.model) for e in evaluations], ignore_index=True
        ),
        forecasts=pd.DataFrame([vars(f) for f in forecasts]),
        seed_metrics=(
            pd.concat(seed_metrics, ignore_index=True)
            if seed_metrics
            else pd.DataFrame(columns=store.TABLE_COLUMNS["seed_metrics"])
        ),
        comparisons=comparisons,
        horizon_metrics=pd.concat(
            [e.horizon_metrics.assign(model=e.model, split="test") for e in evaluations],
            ignore_index=True,
        ),
        **extra,
    )


@task(name="write_run", cache_policy=NO_CACHE)
def write_run(path: Path, output: store.RunOutput) -> None:
    """Write the whole run to DuckDB in one transaction."""
    get_run_logger().info("writing run %s to %s", output.run_id, path)
    store.write_run(path, output)
    get_run_logger().info(
        "wrote run %s: %d model fits, %d predictions, %d forecasts, %d rolling forecasts",
        output.run_id,
        len(output.models),
        len(output.predictions),
        len(output.forecasts),
        len(output.rolling_predictions),
    )


@task(name="write_backtest", cache_policy=NO_CACHE)
def write_backtest(path: Path, output: store.BacktestOutput) -> None:
    """Write the whole backtest to DuckDB in one transaction."""
    store.write_backtest(path, output)
    get_run_logger().info(
        "wrote backtest %s: %d forecasts, %d models, %d comparisons",
        output.run_id,
        len(output.predictions),
        len(output.metrics),
        len(output.comparisons),
    )
