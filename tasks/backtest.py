"""Rolling-origin backtest: refit on data up to t-1, forecast month t, compare with naive."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from scipy import stats

from core.errors import PipelineError
from core.settings import Settings
from tasks.evaluate import compute_metrics, mae
from tasks.models import model_spec
from tasks.stacked import Member, fit_stacked
from tasks.train import fit_model
from tasks.windows import MIN_TRAIN_SAMPLES, Windows, fit_scaler
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
    segment: Segment, windows: Windows, i: int, predicted: float, seconds: float, seed: int | None
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
    }


def run_segment(
    segment: Segment,
    windows: Windows,
    *,
    scaling: str,
    epochs: int,
    batch_size: int,
    seed: int,
) -> pd.DataFrame:
    """Fit from scratch at every origin of one segment and forecast each origin's month.

    A network's origins are the members of one stacked fit: member ``k`` learns only from
    the samples before its origin, scaled by a scaler fitted on those samples alone, and
    starts from the registry network's initialisation under ``seed``.

    Returns:
        One row per origin: model, origin_month, target_month, actual, predicted,
        train_seconds (a stacked fit's time is shared equally by its members), fit
        (``scratch``) and seed (NULL for the baselines).

    Raises:
        PipelineError: a member's loss became NaN (the message names model and origin).
    """
    rows: list[dict[str, object]] = []
    builder = model_spec(segment.model).builder
    if builder is None:  # a baseline: fitted origin by origin
        for i in segment.origins:
            train = windows.part(0, i)  # targets up to month t-1 only
            model = fit_model(
                segment.model,
                train,
                fit_scaler(scaling, train),  # type: ignore[arg-type]
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
            )
            predicted = float(model.predict(windows.X[i : i + 1])[0])
            rows.append(_row(segment, windows, i, predicted, model.train_seconds, None))
        return pd.DataFrame(rows, columns=BACKTEST_COLUMNS)
    members = [
        Member(
            seed=seed,
            samples=i,
            scaler=fit_scaler(scaling, windows.part(0, i)),  # type: ignore[arg-type]
            label=f"origin {windows.months[i - 1]:%Y-%m}",
        )
        for i in segment.origins
    ]
    fit = fit_stacked(
        segment.model,
        builder,
        windows.part(0, segment.origins[-1]),
        members,
        epochs=epochs,
        batch_size=batch_size,
    )
    forecast = fit.predict(windows.X[list(segment.origins)])  # (origins, members)
    seconds = fit.train_seconds / len(members)
    for k, i in enumerate(segment.origins):
        rows.append(_row(segment, windows, i, float(forecast[k, k]), seconds, seed))
    return pd.DataFrame(rows, columns=BACKTEST_COLUMNS)


@task(
    name="backtest_segment",
    task_run_name="backtest-{segment.model}-from-{segment.first_target}",
    cache_policy=NO_CACHE,
)
def backtest_segment(
    segment: Segment,
    windows: Windows,
    scaling: str,
    epochs: int,
    batch_size: int,
    seed: int,
) -> pd.DataFrame:
    """Backtest one model over one segment of origins (one stacked fit for a network)."""
    started = time.perf_counter()
    frame = run_segment(
        segment, windows, scaling=scaling, epochs=epochs, batch_size=batch_size, seed=seed
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
class DieboldMariano:
    """Diebold-Mariano test of equal squared error, with the HLN small-sample correction."""

    stat: float  # negative: the model's squared errors are smaller than the baseline's
    pvalue: float  # two-sided, Student t with n - 1 degrees of freedom
    n: int


def diebold_mariano(
    model_errors: np.ndarray, baseline_errors: np.ndarray, horizon: int = 1
) -> DieboldMariano:
    """Compare two forecasts' errors on the same targets (loss: squared error).

    The statistic uses the loss differential's autocovariances up to lag ``horizon - 1``,
    is scaled by Harvey, Leybourne and Newbold's (1997) factor and referred to Student t
    with n - 1 degrees of freedom. It is NaN when n < 2 or the differential is constant.
    """
    e1 = np.asarray(model_errors, dtype=np.float64)
    e2 = np.asarray(baseline_errors, dtype=np.float64)
    if e1.shape != e2.shape or e1.ndim != 1:
        raise ValueError("error arrays must be one-dimensional and of equal length")
    d = e1**2 - e2**2
    n = len(d)
    if n < 2 or horizon < 1 or horizon >= n:
        return DieboldMariano(math.nan, math.nan, n)
    centred = d - d.mean()
    autocov = [float(np.dot(centred[k:], centred[: n - k]) / n) for k in range(horizon)]
    variance = (autocov[0] + 2.0 * sum(autocov[1:])) / n
    if not variance > 0.0:
        return DieboldMariano(math.nan, math.nan, n)
    dm = float(d.mean()) / math.sqrt(variance)
    hln = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    stat = dm * hln
    return DieboldMariano(stat, float(2.0 * stats.t.sf(abs(stat), df=n - 1)), n)


@dataclass(frozen=True)
class BacktestResults:
    """A backtest's per-origin forecasts, per-model metrics and comparisons with naive."""

    predictions: pd.DataFrame  # BACKTEST_COLUMNS
    metrics: pd.DataFrame  # model, split, rmse, mae, mape, mase, theil_u2, ..., n
    comparisons: pd.DataFrame  # model, baseline, split, dm_stat, dm_pvalue, n


def summarize_backtest(frames: list[pd.DataFrame], windows: Windows) -> BacktestResults:
    """Score every model's backtest forecasts and test each against ``naive`` (DM, h = 1)."""
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
    comparisons = []
    if "naive" in errors:
        base = errors["naive"]
        for model, err in errors.items():
            if model == "naive":
                continue
            common = err.index.intersection(base.index)
            test = diebold_mariano(err.loc[common].to_numpy(), base.loc[common].to_numpy())
            comparisons.append(
                {
                    "model": model,
                    "baseline": "naive",
                    "split": "backtest",
                    "dm_stat": test.stat,
                    "dm_pvalue": test.pvalue,
                    "n": test.n,
                }
            )
    return BacktestResults(
        predictions=predictions,
        metrics=pd.DataFrame(metrics),
        comparisons=pd.DataFrame(
            comparisons, columns=["model", "baseline", "split", "dm_stat", "dm_pvalue", "n"]
        ),
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
