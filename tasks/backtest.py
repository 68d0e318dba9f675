"""Rolling-origin backtest: refit on data up to t-1, forecast month t, compare with naive."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.errors import PipelineError
from core.settings import Settings
from tasks.evaluate import compare_errors, compute_metrics, mae
from tasks.forecast import interval_bounds
from tasks.models import model_spec
from tasks.stacked import Member, fit_stacked
from tasks.train import fit_model
from tasks.windows import MIN_TRAIN_SAMPLES, Windows, fit_scaler, split_index
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
        cheap = model_spec(model).builder is None  # a baseline: all origins in one task
        step = len(indices) if cheap else chunk_size
        for start in range(0, len(indices), step):
            chunk = tuple(indices[start : start + step])
            segments.append(Segment(model=model, origins=chunk, first_target=label(chunk[0])))
    return segments


def _row(
    segment: Segment,
    windows: Windows,
    i: int,
    predicted: float,
    bands: dict[str, float],
    seconds: float,
    seed: int | None,
) -> dict[str, object]:
    target = windows.months[i]
    return {
        "model": segment.model,
        "origin_month": target - pd.DateOffset(months=1),
        "target_month": target,
        "actual": float(windows.y[i]),
        "predicted": predicted,
        "train_seconds": seconds,
        "fit": "scratch",
        "seed": seed,
        **bands,
    }


def evaluation_cut(origin: int, test_fraction: float) -> int:
    """Where a monthly run at sample ``origin`` would split its ``origin`` samples."""
    return max(1, min(origin - 1, split_index(origin, test_fraction)))


def run_segment(
    segment: Segment,
    windows: Windows,
    *,
    scaling: str,
    epochs: int,
    batch_size: int,
    seed: int,
    seeds: int = 1,
    test_fraction: float = 0.2,
) -> pd.DataFrame:
    """Fit from scratch at every origin of one segment and forecast each origin's month.

    At origin ``i`` (samples ``[0, i)`` known) the forecast is the mean of ``seeds`` members
    fitted on all ``i`` samples, as a monthly run's forecast fit. Its 80 % and 95 % bands are
    built as a monthly run builds them: ``seeds`` evaluation members fitted on the samples
    before the run's split (``test_fraction``) predict the samples after it, and the
    quantiles of log(actual / predicted) there scale the forecast. A network's members, of
    every origin and both roles, train as one stacked fit; each learns only from its own
    samples, scaled by a scaler fitted on them alone.

    Returns:
        One row per origin: BACKTEST_COLUMNS (``seed`` is the ensemble's first seed, NULL for
        the baselines; a stacked fit's time is shared equally by its origins).

    Raises:
        PipelineError: a member's loss became NaN (the message names model and origin).
    """
    cuts = {i: evaluation_cut(i, test_fraction) for i in segment.origins}
    builder = model_spec(segment.model).builder
    if builder is None:  # a baseline: fitted origin by origin
        rows = []
        for i in segment.origins:
            fits = {}
            for role, n in (("forecast", i), ("evaluation", cuts[i])):
                train = windows.part(0, n)
                fits[role] = fit_model(
                    segment.model,
                    train,
                    fit_scaler(scaling, train),  # type: ignore[arg-type]
                    epochs=epochs,
                    batch_size=batch_size,
                    seed=seed,
                    role=role,
                )
            point = float(fits["forecast"].predict(windows.X[i : i + 1])[0])
            checked = fits["evaluation"].predict(windows.X[cuts[i] : i])
            bands = interval_bounds(point, windows.y[cuts[i] : i], checked)
            seconds = fits["forecast"].train_seconds + fits["evaluation"].train_seconds
            rows.append(_row(segment, windows, i, point, bands, seconds, None))
        return pd.DataFrame(rows, columns=BACKTEST_COLUMNS)

    members, columns = [], {}
    for i in segment.origins:
        month = f"{windows.months[i - 1]:%Y-%m}"
        for role, n in (("forecast", i), ("evaluation", cuts[i])):
            scaler = fit_scaler(scaling, windows.part(0, n))  # type: ignore[arg-type]
            columns[i, role] = range(len(members), len(members) + seeds)
            members += [
                Member(s, n, scaler, f"origin {month} ({role}, seed {s})")
                for s in range(seed, seed + seeds)
            ]
    fit = fit_stacked(
        segment.model,
        builder,
        windows.part(0, segment.origins[-1]),
        members,
        epochs=epochs,
        batch_size=batch_size,
    )
    first = min(cuts.values())
    predicted = fit.predict(windows.X[first : segment.origins[-1] + 1])  # (months, members)
    seconds = fit.train_seconds / len(segment.origins)
    rows = []
    for i in segment.origins:
        point = float(predicted[i - first, columns[i, "forecast"]].mean())
        checked = predicted[cuts[i] - first : i - first, columns[i, "evaluation"]].mean(axis=1)
        bands = interval_bounds(point, windows.y[cuts[i] : i], checked)
        rows.append(_row(segment, windows, i, point, bands, seconds, seed))
    return pd.DataFrame(rows, columns=BACKTEST_COLUMNS)


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
        test_fraction=settings.test_fraction,
    )
    get_run_logger().info(
        "%s: %d origins from %s fitted in %.1f s",
        segment.model,
        len(frame),
        segment.first_target,
        time.perf_counter() - started,
    )
    return frame


@dataclass(frozen=True)
class BacktestResults:
    """A backtest's per-origin forecasts, per-model metrics and comparisons with naive."""

    predictions: pd.DataFrame  # BACKTEST_COLUMNS
    metrics: pd.DataFrame  # model, split, rmse, mae, mape, mase, theil_u2, ..., n
    comparisons: pd.DataFrame  # model, baseline, split, dm_stat, dm_pvalue, n


def summarize_backtest(frames: list[pd.DataFrame], windows: Windows) -> BacktestResults:
    """Score every model's backtest forecasts and run the due-diligence tests (DM, h = 1).

    The pairs are those of ``tasks.evaluate.comparison_pairs``: every model against naive
    and drift, conv1d_lstm against lstm, and each variant against its base network.
    """
    predictions = (
        pd.concat(frames, ignore_index=True)
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
