"""Flow ``monthly-backtest``: replay monthly retraining over past months and score it."""

from dataclasses import dataclass, field

import pandas as pd
from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from core.errors import PipelineError
from core.settings import Settings
from flows.common import new_run_id, rename_flow_run, untagged_task_runs
from tasks.data.ingest import fetch_prices
from tasks.data.windows import MIN_TRAIN_SAMPLES, make_windows_task
from tasks.evaluation.backtest import backtest_segment, plan_backtest, summarize_backtest
from tasks.run.lifecycle import RunLifecycle, failure_message
from tasks.run.persist import passed_over_text
from tasks.run.publish import publish_backtest
from tasks.run.report import backtest_table
from warehouse.store import BacktestOutput

# A backtest holds the run lock while it fits: wait this long for a monthly run holding it
# rather than give up.
LOCK_WAIT_SECONDS = 900.0


@dataclass(frozen=True)
class BacktestSummary:
    """What a backtest did: its run id, a one-line message and its table (best RMSE first)."""

    run_id: str
    message: str
    table: list[dict[str, object]] = field(default_factory=list)


@flow(name="monthly-backtest", flow_run_name="backtest-pending", log_prints=False)
def monthly_backtest(settings: Settings) -> BacktestSummary | State:
    """Refit every model at each of the last N months on data before it, and score the forecasts.

    Bad data or impossible options fail before anything is written. The fits run inside the
    run's lifecycle (lock, ``running`` row), and one transaction stores the results.
    """
    run_id = new_run_id()
    try:
        with untagged_task_runs():
            return _backtest(settings, run_id)
    except PipelineError as exc:  # WarehouseError included; the lifecycle has recorded it
        return Failed(message=str(exc))
    except Exception as exc:
        get_run_logger().exception("unexpected error in backtest %s", run_id)
        return Failed(message=failure_message(exc))


def _backtest(settings: Settings, run_id: str) -> BacktestSummary:
    logger = get_run_logger()
    fetched = fetch_prices(settings, settings.window + MIN_TRAIN_SAMPLES + 1)
    download, prices = fetched.download, fetched.prices
    windows = make_windows_task(prices, settings.window)
    segments = plan_backtest(windows, settings)
    rename_flow_run(f"backtest-{prices['month'].iloc[-1]:%Y-%m}")
    wait = max(settings.wait_seconds, LOCK_WAIT_SECONDS)
    with RunLifecycle.of(settings, run_id, "backtest", flow_run.get_id(), wait) as run:
        futures = [backtest_segment.submit(segment, windows, settings) for segment in segments]
        results = summarize_backtest([f.result() for f in futures], windows, settings.models)
        run.commit(
            BacktestOutput(
                run_id=run_id,
                snapshot_id=download.sha256,
                source=download.source,
                fetched_at=download.fetched_at,
                prices=prices[["month", "close"]],
                predictions=results.predictions,
                metrics=results.metrics,
                comparisons=results.comparisons,
                passed_over=passed_over_text(fetched),
            )
        )

    table = backtest_table(results.metrics, results.comparisons, results.predictions)
    targets = results.predictions["target_month"]
    span = f"{pd.Timestamp(targets.min()):%Y-%m} … {pd.Timestamp(targets.max()):%Y-%m}"
    publish_backtest(table, run_id, f"{settings.origins} origins, targets {span}")
    message = (
        f"backtest {run_id} completed: {len(table)} models x {settings.origins} origins"
        f" (targets {span})"
    )
    logger.info(message)
    return BacktestSummary(run_id=run_id, message=message, table=table)
