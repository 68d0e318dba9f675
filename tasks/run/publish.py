"""The flows' Prefect artifacts: the leaderboard, forecast, validation and backtest texts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.run.report import (
    coverage_by_decade,
    data_notes,
    due_diligence,
    forecast_markdown,
    headline_champion,
    leaderboard_table,
    render_history,
    render_report,
    validation_markdown,
)
from warehouse.store import RunOutput

LEADERBOARD_KEY = "sp500-leaderboard"
FORECAST_KEY = "sp500-forecast"
VALIDATION_KEY = "sp500-validation"
BACKTEST_KEY = "sp500-backtest"


def champion_history(output: RunOutput) -> pd.DataFrame:
    """Each horizon's champion's rolling forecasts with bands (the drawn path's history)."""
    chosen = output.rolling_champions[["model", "horizon"]]
    return output.rolling_predictions.merge(chosen, on=["model", "horizon"], how="inner")


@task(name="publish_results", cache_policy=NO_CACHE)
def publish_results(
    output: RunOutput, leaderboard: list[dict[str, object]], reports_dir: Path
) -> Path:
    """Write the report PNGs and the ``sp500-leaderboard`` and ``sp500-forecast`` artifacts."""
    champions = output.rolling_champions
    report = render_report(
        output.prices,
        output.predictions,
        output.forecasts,
        champions,
        reports_dir / f"{output.run_id}.png",
    )
    history = champion_history(output)
    render_history(history, reports_dir / f"{output.run_id}-history.png")
    create_table_artifact(
        key=LEADERBOARD_KEY,
        table=leaderboard_table(leaderboard),
        description=f"The lesson's table (test split) of run {output.run_id}",
    )
    rmse = output.metrics.set_index("model")["rmse"].to_dict()
    test_split = output.comparisons[output.comparisons["split"] == "test"]
    create_markdown_artifact(
        key=FORECAST_KEY,
        markdown=forecast_markdown(
            output.forecasts,
            champions,
            report,
            due_diligence(rmse, test_split),
            data_notes(output.source, output.passed_over, output.revisions),
            coverage_by_decade(history),
        ),
        description=f"Forecasts of run {output.run_id}",
    )
    get_run_logger().info("champion %s; report %s", headline_champion(champions), report)
    return report


@task(name="publish_validation_failure", cache_policy=NO_CACHE)
def publish_validation_failure(failures: pd.DataFrame, message: str) -> None:
    """Publish the ``sp500-validation`` artifact: the failing checks with examples."""
    create_markdown_artifact(
        key=VALIDATION_KEY,
        markdown=validation_markdown(failures, message),
        description="Why the downloaded series was rejected",
    )


@task(name="publish_backtest", cache_policy=NO_CACHE)
def publish_backtest(rows: list[dict[str, object]], run_id: str, description: str) -> None:
    """Publish the ``sp500-backtest`` table artifact."""
    create_table_artifact(
        key=BACKTEST_KEY, table=rows, description=f"Backtest {run_id}: {description}"
    )
