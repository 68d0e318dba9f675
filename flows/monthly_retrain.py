"""Flow ``monthly-retrain``: download → validate → window → train/evaluate/forecast → DuckDB."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import TagsContext
from prefect.runtime import flow_run
from prefect.states import Failed, State

from tasks.config import Settings
from tasks.errors import PipelineError, ValidationFailed, WarehouseError
from tasks.evaluate import evaluate_model, rank_evaluations
from tasks.forecast import forecast_next
from tasks.ingest import download_csv
from tasks.persist import (
    build_output,
    discard_run,
    find_unchanged_run,
    migrate_warehouse,
    record_run_failure,
    record_run_start,
    recover_crashed_runs,
    write_run,
)
from tasks.report import publish_results, publish_validation_failure
from tasks.train import train_model
from tasks.validate import validate_prices
from tasks.windows import fit_scaler_task, make_windows_task, min_rows_needed, split_task
from warehouse.lock import hold_run_lock


@dataclass(frozen=True)
class RunSummary:
    """What a flow run did: its run id, outcome and leaderboard rows (best first)."""

    run_id: str
    status: str  # "completed" or "unchanged"
    message: str
    leaderboard: list[dict[str, object]] = field(default_factory=list)


def new_run_id() -> str:
    """A sortable, unique run id: UTC timestamp plus 8 random hex digits."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def rename_flow_run(name: str) -> None:
    """Rename the current flow run in the UI (a no-op outside a flow run)."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, name=name)


@contextmanager
def untagged_task_runs() -> Iterator[None]:
    """Inside it, task runs no longer inherit the tags of ``prefect.tags()`` around the flow.

    The CLI's tags label the flow run. Prefect asks its API for a concurrency slot for each
    tagged task run, and with Prefect 3.9 that request can stall for about 2 s after a long
    task: several seconds per run for tags nobody limits.
    """
    with TagsContext(current_tags=set()):
        yield


@flow(name="monthly-retrain", flow_run_name="retrain-pending", log_prints=False)
def monthly_retrain(settings: Settings) -> RunSummary | State:
    """Retrain every model on the latest monthly S&P 500 series and store the results."""
    run_id = new_run_id()
    try:
        with untagged_task_runs(), hold_run_lock(settings.warehouse, run_id, settings.wait_seconds):
            return _retrain(settings, run_id)
    except WarehouseError as exc:  # busy, or unusable before this run had a row to fail
        return Failed(message=str(exc))


def _retrain(settings: Settings, run_id: str) -> RunSummary | State:
    logger = get_run_logger()
    params = settings.run_params()
    artifact_dir = settings.models_dir / run_id
    migrate_warehouse(settings.warehouse)
    recover_crashed_runs(settings.warehouse, settings.models_dir, run_id)
    record_run_start(settings.warehouse, run_id, flow_run.get_id(), params)
    try:
        download = download_csv(settings)
        prices = validate_prices(
            download.content, settings, min_rows_needed(settings.window, settings.test_fraction)
        )
        rename_flow_run(f"retrain-{prices['month'].iloc[-1]:%Y-%m}")
        previous = find_unchanged_run(settings.warehouse, download.sha256, params)
        if previous and not settings.force:
            discard_run(settings.warehouse, run_id, artifact_dir)
            message = f"data unchanged since run {previous}; nothing to do (use --force to rerun)"
            logger.info(message)
            return RunSummary(run_id=previous, status="unchanged", message=message)

        windows = make_windows_task(prices, settings.window)
        train, test = split_task(windows, settings.test_fraction)
        scaler = fit_scaler_task(settings.scaling, train)
        models, evaluations, forecasts = [], [], []
        for k, name in enumerate(settings.models, start=1):
            model = train_model(
                name,
                train,
                scaler,
                settings.epochs,
                settings.batch_size,
                settings.seed,
                artifact_dir,
                f"{k}/{len(settings.models)}",
            )
            evaluation = evaluate_model(model, train, test)
            models.append(model)
            evaluations.append(evaluation)
            forecasts.append(forecast_next(model, prices, settings.window, evaluation))
        leaderboard = rank_evaluations(evaluations)
        output = build_output(run_id, download, prices, models, evaluations, forecasts)
        write_run(settings.warehouse, output)
    except PipelineError as exc:
        failures = exc.failures if isinstance(exc, ValidationFailed) else None
        record_run_failure(settings.warehouse, run_id, str(exc), failures, artifact_dir)
        if failures is not None:
            publish_validation_failure(failures, str(exc))
        return Failed(message=str(exc))
    except Exception as exc:
        logger.exception("unexpected error in run %s", run_id)
        message = f"unexpected {type(exc).__name__}: {exc}"
        record_run_failure(settings.warehouse, run_id, message, None, artifact_dir)
        return Failed(message=message)

    publish_results(output, leaderboard, settings.reports_dir)
    target = pd.Timestamp(forecasts[0].target_month).strftime("%Y-%m")
    message = f"run {run_id} completed: {len(models)} models, forecasts for {target}"
    logger.info(message)
    return RunSummary(run_id=run_id, status="completed", message=message, leaderboard=leaderboard)
