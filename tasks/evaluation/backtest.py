"""Backtest: the rolling-origin engine with a refit every month over the last N months.

At each of the last ``origins`` months every model is refitted from scratch on the data
before it and forecasts that month; bands come online from earlier origins' errors. It is
``tasks.evaluation.rolling``'s engine with ``refit_every = 1`` (and h = 1), cut into segments of
origins so that segments can run in parallel task runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.errors import PipelineError
from core.settings import Settings, mean_components
from tasks.data.windows import MIN_TRAIN_SAMPLES, ScalingName, Windows
from tasks.evaluation.evaluate import compare_errors, compute_metrics, mae
from tasks.evaluation.rolling import (
    RollingPlan,
    calibrate_rolling,
    combine_rolling,
    rolling_forecasts,
)
from tasks.models.registry import is_combination, model_spec
from warehouse.store import BACKTEST_TABLE_COLUMNS

# the columns of backtest_predictions, in the warehouse's order
BACKTEST_COLUMNS = BACKTEST_TABLE_COLUMNS["backtest_predictions"]


@dataclass(frozen=True)
class Segment:
    """Consecutive origins of one model, fitted from scratch at every origin in one task run.

    ``origins`` are sample indices: at origin ``i`` the model is fitted on samples ``[0, i)``
    (targets up to month t-1) and forecasts sample ``i``'s target, month t. A network's
    origins train together as the members of one stacked fit.
    """

    model: str
    origins: tuple[int, ...]
    first_target: str  # YYYY-MM of the first forecast month, for task-run names


def max_origins(n_samples: int) -> int:
    """Most origins ``n_samples`` windows allow while the first fit keeps 8 training samples."""
    return max(0, n_samples - MIN_TRAIN_SAMPLES)


def plan_segments(
    windows: Windows, models: tuple[str, ...], origins: int, chunk_size: int
) -> list[Segment]:
    """Cut the last ``origins`` samples into per-model segments of ``chunk_size`` origins.

    Each segment is one task run; a network's segment is one stacked fit of ``chunk_size``
    members. Baselines cost nothing to fit, so each gets one segment covering every origin.

    Raises:
        PipelineError: ``origins`` or ``chunk_size`` is below 1, or ``origins`` is more than
            the windows allow.
    """
    if origins < 1:
        raise PipelineError(f"--origins must be at least 1, got {origins}")
    if chunk_size < 1:
        raise PipelineError(f"--chunk-size must be at least 1, got {chunk_size}")
    n = len(windows)
    allowed = max_origins(n)
    if origins > allowed:
        raise PipelineError(
            f"--origins {origins} is too many: the data gives {n} windows, so at most {allowed}"
            f" origins leave the first fit {MIN_TRAIN_SAMPLES} training samples"
        )
    indices = list(range(n - origins, n))

    def label(i: int) -> str:
        return windows.months[i].strftime("%Y-%m")

    segments = []
    for model in models:
        if is_combination(model):  # mean: made from the others' forecasts, nothing to fit
            continue
        cheap = model_spec(model).builder is None  # a baseline: all origins in one task
        step = len(indices) if cheap else chunk_size
        for start in range(0, len(indices), step):
            chunk = tuple(indices[start : start + step])
            segments.append(Segment(model=model, origins=chunk, first_target=label(chunk[0])))
    return segments


def segment_plan(segment: Segment) -> RollingPlan:
    """The rolling plan of one segment: a refit at every origin, each forecasting its month."""
    stops = (*segment.origins[1:], segment.origins[-1] + 1)
    return RollingPlan(cuts=segment.origins, stops=stops, horizon=1)


def run_segment(
    segment: Segment,
    windows: Windows,
    *,
    scaling: ScalingName,
    epochs: int,
    batch_size: int,
    seed: int,
    seeds: int = 1,
) -> pd.DataFrame:
    """Fit from scratch at every origin of one segment and forecast each origin's month.

    The rolling-origin engine of every monthly run (``tasks.evaluation.rolling``) with a refit every
    month: at origin ``i`` (samples ``[0, i)`` known, their own scaler) a network's forecast
    is the mean of ``seeds`` members, as a monthly run's forecast is; all members of every
    origin train as one stacked fit. Bands come later, online, from the errors of earlier
    origins (``summarize_backtest``).

    Returns:
        The engine's rows (h = 1) with ``train_seconds`` (a stacked fit's time shared equally
        by its origins) and ``seed`` (the ensemble's first seed; None for a baseline).

    Raises:
        PipelineError: a member's loss became NaN (the message names model and origin).
    """
    network = model_spec(segment.model).builder is not None
    frame, seconds = rolling_forecasts(
        segment.model,
        windows,
        segment_plan(segment),
        scaling=scaling,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        seeds=seeds,
    )
    return frame.assign(
        train_seconds=seconds / len(segment.origins), seed=seed if network else None
    )


@task(
    name="backtest_segment",
    task_run_name="backtest-{segment.model}-from-{segment.first_target}",
    cache_policy=NO_CACHE,
)
def backtest_segment(segment: Segment, windows: Windows, settings: Settings) -> pd.DataFrame:
    """Backtest one model over one segment of origins (one stacked fit for a network)."""
    started = time.perf_counter()
    frame = run_segment(
        segment,
        windows,
        scaling=settings.scaling,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        seeds=settings.seeds,
    )
    get_run_logger().info(
        "%s: %d origins from %s fitted in %.1f s",
        segment.model,
        len(frame),
        segment.first_target,
        time.perf_counter() - started,
    )
    return frame


def combine_backtest(name: str, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """A combination's backtest forecasts (``mean``) from its components' (nothing fitted)."""
    return combine_rolling(name, frames).assign(train_seconds=0.0, seed=None)


@dataclass(frozen=True)
class BacktestResults:
    """A backtest's per-origin forecasts, per-model metrics and comparisons with naive."""

    predictions: pd.DataFrame  # BACKTEST_COLUMNS
    metrics: pd.DataFrame  # model, split, rmse, mae, mape, mase, theil_u2, ..., n
    comparisons: pd.DataFrame  # model, baseline, split, dm_stat, dm_pvalue, n


def backtest_rows(frame: pd.DataFrame, windows: Windows) -> pd.DataFrame:
    """One model's engine rows as ``backtest_predictions`` rows, with online bands.

    A band uses only the errors of earlier origins whose month has arrived (per side,
    adapted online: ``tasks.evaluation.calibrate``); the first ``WARM_UP`` origins have none.
    """
    banded, _ = calibrate_rolling(frame, windows)
    extra = frame.set_index("target_month")[["train_seconds", "seed"]]
    out = banded.join(extra, on="target_month").rename(columns={"point": "predicted"})
    return out.assign(fit="scratch")[BACKTEST_COLUMNS]


def summarize_backtest(
    frames: list[pd.DataFrame], windows: Windows, models: tuple[str, ...] = ()
) -> BacktestResults:
    """Band every model's forecasts, score them and run the due-diligence tests (DM, h = 1).

    ``frames`` are the engine rows of ``run_segment`` (several segments per model allowed);
    a combination among ``models`` (``mean``) is made here from its components' rows.
    The pairs are those of ``tasks.evaluation.evaluate.comparison_pairs``: every model against naive
    and drift, conv1d_lstm against lstm, and each variant against its base network.
    """
    rows = pd.concat(frames, ignore_index=True)
    by_model = dict(list(rows.groupby("model", sort=False)))
    for name in models:
        if is_combination(name):
            by_model[name] = combine_backtest(name, [by_model[m] for m in mean_components(models)])
    predictions = (
        pd.concat([backtest_rows(f, windows) for f in by_model.values()], ignore_index=True)
        .sort_values(["model", "target_month"], kind="stable")
        .reset_index(drop=True)
    )
    month_index = {month: i for i, month in enumerate(windows.months)}
    first = min(month_index[m] for m in predictions["target_month"])
    train_naive_mae = mae(windows.y[:first], windows.last[:first])
    metrics, errors = [], {}
    for model, group in predictions.groupby("model", sort=False):
        last = windows.last[[month_index[m] for m in group["target_month"]]]
        actual, predicted = group["actual"].to_numpy(), group["predicted"].to_numpy()
        metrics.append(
            {
                "model": model,
                "split": "backtest",
                **compute_metrics(actual, predicted, last, train_naive_mae),
            }
        )
        errors[model] = pd.Series(actual - predicted, index=group["target_month"].to_numpy())
    comparisons = compare_errors(errors, "backtest")
    return BacktestResults(
        predictions=predictions,
        metrics=pd.DataFrame(metrics),
        comparisons=comparisons,
    )


@task(name="plan_backtest", cache_policy=NO_CACHE)
def plan_backtest(windows: Windows, settings: Settings) -> list[Segment]:
    """Plan the backtest's segments from the settings; fail on impossible origins."""
    segments = plan_segments(windows, settings.models, settings.origins, settings.chunk_size)
    first = windows.months[len(windows) - settings.origins]
    get_run_logger().info(
        "%d origins (targets %s … %s), %d segments of up to %d stacked fits each",
        settings.origins,
        first.strftime("%Y-%m"),
        windows.months[-1].strftime("%Y-%m"),
        len(segments),
        settings.chunk_size,
    )
    return segments
