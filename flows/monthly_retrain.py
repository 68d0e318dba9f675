"""Flow ``monthly-retrain``: download → validate → window → train/evaluate/forecast → DuckDB."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from core.errors import PipelineError, ValidationFailed
from core.settings import Settings, mean_components
from flows.common import make_task_runner, new_run_id, rename_flow_run, untagged_task_runs
from tasks.data.ingest import fetch_prices
from tasks.data.revisions import find_revisions_task
from tasks.data.windows import Windows, make_windows_task, min_rows_needed, split_task
from tasks.evaluation.evaluate import compare_models_task, evaluate_model, rank_evaluations
from tasks.evaluation.forecast import band_forecasts, forecast_next
from tasks.evaluation.rolling import (
    combine_rolling_task,
    make_rolling_paths,
    origin_blocks,
    past_moves,
    plan_rolling_task,
    score_rolling_task,
)
from tasks.models.fit import FittedModel, fit_model_task
from tasks.models.registry import is_combination
from tasks.models.train import TrainedModel, combine_model
from tasks.run.lifecycle import RunLifecycle, failure_message
from tasks.run.notify import emit_run_events_task
from tasks.run.persist import build_output
from tasks.run.publish import publish_results, publish_validation_failure
from tasks.run.report import month_span


@dataclass(frozen=True)
class RunSummary:
    """What a flow run did: its run id, outcome and leaderboard rows (best first)."""

    run_id: str
    status: str  # "completed" or "unchanged"
    message: str
    leaderboard: list[dict[str, object]] = field(default_factory=list)  # the lesson's table
    champions: list[dict[str, object]] = field(default_factory=list)  # one verdict per horizon


@flow(name="monthly-retrain", flow_run_name="retrain-pending", log_prints=False)
def monthly_retrain(settings: Settings) -> RunSummary | State:
    """Retrain every model on the latest monthly S&P 500 series and store the results."""
    run_id = new_run_id()
    lifecycle = RunLifecycle.of(settings, run_id, "retrain", flow_run.get_id())
    try:
        with untagged_task_runs(), lifecycle:
            return _retrain(settings, lifecycle)
    except PipelineError as exc:  # the lifecycle has recorded it (or the run never started)
        if isinstance(exc, ValidationFailed):
            publish_validation_failure(exc.failures, str(exc))
        return Failed(message=str(exc))
    except Exception as exc:
        get_run_logger().exception("unexpected error in run %s", run_id)
        return Failed(message=failure_message(exc))


def fit_models(
    settings: Settings,
    windows: Windows,
    split_at: int,
    cuts: tuple[int, ...],
    blocks: list[np.ndarray],
    run: RunLifecycle,
) -> dict[str, FittedModel]:
    """Every model's fits, in run order (``mean`` combines them later and is not fitted).

    Without ``--task-runner`` one after the other in this process; with one, all at once on
    that runner (``--workers`` at a time), each in its own task run.
    """
    shared: dict[str, Any] = {
        "windows": windows,
        "split_at": split_at,
        "cuts": cuts,
        "blocks": blocks,
        "settings": settings,
        "artifact_dir": run.artifact_dir,
    }
    calls = {
        name: {"name": name, "position": f"{k}/{len(settings.models)}", **shared}
        for k, name in enumerate(settings.models, start=1)
        if not is_combination(name)
    }
    if settings.task_runner is None:
        return {name: fit_model_task(**p) for name, p in calls.items()}
    with make_task_runner(settings) as runner:
        futures = {name: runner.submit(fit_model_task, p) for name, p in calls.items()}
        return {name: future.result() for name, future in futures.items()}


def _retrain(settings: Settings, run: RunLifecycle) -> RunSummary:
    logger = get_run_logger()
    fetched = fetch_prices(
        settings, min_rows_needed(settings.window, settings.test_fraction, settings.horizon)
    )
    download, prices = fetched.download, fetched.prices
    rename_flow_run(f"retrain-{prices['month'].iloc[-1]:%Y-%m}")
    previous = run.unchanged_since(download.sha256)
    if previous and not settings.force:
        message = run.unchanged(previous, download.sha256)
        return RunSummary(run_id=previous, status="unchanged", message=message)

    revisions = find_revisions_task(settings.warehouse, prices)
    windows = make_windows_task(prices, settings.window)
    plan = plan_rolling_task(windows, settings)  # impossible settings: the run is invalid
    train, test = split_task(windows, settings.test_fraction)
    fits: dict[str, tuple[TrainedModel, TrainedModel]] = {}  # evaluation, forecast
    models, evaluations, forecasts, rolling = [], [], [], {}
    made = fit_models(settings, windows, len(train), plan.cuts, origin_blocks(windows, plan), run)
    for name, fitted_model in made.items():
        fits[name] = (fitted_model.evaluation, fitted_model.forecast)
        rolling[name] = make_rolling_paths(name, windows, plan, fitted_model.origin_paths)
    for name in settings.models:
        if is_combination(name):
            parts = mean_components(settings.models)
            fits[name] = (
                combine_model(name, [fits[p][0] for p in parts], "evaluation"),
                combine_model(name, [fits[p][1] for p in parts], "forecast"),
            )
            rolling[name] = combine_rolling_task(name, [rolling[p] for p in parts])
    for name in settings.models:
        fitted, final = fits[name]
        evaluation = evaluate_model(fitted, train, test, settings.horizon)
        models += [fitted, final]
        evaluations.append(evaluation)
        forecasts += forecast_next(final, prices, settings.window, evaluation, settings.horizon)
    n_params = {name: fits[name][1].n_params for name in settings.models}
    scored = score_rolling_task(list(rolling.values()), windows, n_params)
    forecasts = band_forecasts(forecasts, scored.live, past_moves(windows))
    comparisons = compare_models_task(evaluations)
    leaderboard = rank_evaluations(evaluations, comparisons)
    output = build_output(
        run.run_id,
        fetched,
        models,
        evaluations,
        forecasts,
        comparisons,
        scored,
        revisions,
        artifact_root=settings.warehouse.parent,
    )
    run.commit(output)

    publish_results(output, leaderboard, settings.reports_dir)
    emit_run_events_task(output, settings.warehouse)
    target = month_span(f.target_month for f in forecasts)
    message = f"run {run.run_id} completed: {len(evaluations)} models, forecasts for {target}"
    logger.info(message)
    return RunSummary(
        run_id=run.run_id,
        status="completed",
        message=message,
        leaderboard=leaderboard,
        champions=scored.champions.to_dict("records"),
    )
