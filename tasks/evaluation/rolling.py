"""Rolling-origin evaluation: refit every ``refit_every`` months, forecast 1 … H from each month.

Origins o_1 < o_2 < … are months, every ``refit_every`` from ``evaluate_from`` up to the last
month with a known next close. At origin o a model is fitted on the windows whose targets are
≤ o (with a scaler fitted on those alone), and from every month t with o ≤ t < o_next it
forecasts t+1 … t+H recursively from the window that ends at t: inputs up to t, weights
from o. So each model gets, per horizon, one out-of-sample forecast for every month from
``evaluate_from`` on, made by weights at most ``refit_every`` months old.

The fits live in ``tasks.models.fit`` (a network's origins are members of one stacked fit,
one member per origin, seed ``seed``, each trained only on its own windows; the baselines
are fitted origin by origin); this module plans the origins, makes the paths and scores
them.
Bands come from ``tasks.evaluation.calibrate`` (earlier errors only); scores per model and horizon.

Index conventions: sample j's window ends at month ``months[j] - 1`` (its forecast month t)
and its target is ``months[j]``; at origin count c the fit sees samples ``[0, c)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.errors import SettingsError
from core.settings import Settings
from tasks.data.windows import ScalingName, Windows
from tasks.evaluation.calibrate import (
    LEVELS,
    Calibrator,
    PastMoves,
    band_every_horizon,
    coverage_intervals,
    default_calibrator,
    interval_score,
    within_past_moves,
)
from tasks.evaluation.choose import choose_champions
from tasks.evaluation.evaluate import COMPARISON_COLUMNS, compare_errors, mae, rmse
from tasks.models.fit import OriginModels, fit_origins
from warehouse.store import TABLE_COLUMNS

MIN_ROLLING_SAMPLES = 36  # windows the first origin's fit needs at least
ROLLING_COLUMNS = TABLE_COLUMNS["rolling_predictions"]
ROLLING_METRIC_COLUMNS = TABLE_COLUMNS["rolling_metrics"]


@dataclass(frozen=True)
class RollingPlan:
    """Origin sample counts ``cuts`` (fit on ``[0, cut)``) and each origin's forecast windows.

    Origin k forecasts from windows ``[cuts[k], stops[k])``.
    """

    cuts: tuple[int, ...]
    stops: tuple[int, ...]
    horizon: int

    @property
    def first(self) -> int:
        """First forecast window."""
        return self.cuts[0]


def first_allowed_month(windows: Windows) -> pd.Timestamp:
    """The earliest ``evaluate_from``: the month that leaves the first fit enough windows."""
    return pd.Timestamp(windows.months[MIN_ROLLING_SAMPLES - 1])


def plan_rolling(
    windows: Windows, evaluate_from: str | None, refit_every: int, horizon: int
) -> RollingPlan:
    """Origins every ``refit_every`` months from ``evaluate_from`` (``YYYY-MM``).

    ``None`` takes 1975-01, or the first allowed month if the series starts later.

    Raises:
        SettingsError: ``evaluate_from`` lies before the first month with enough windows
            (``MIN_ROLLING_SAMPLES``) or at or after the last month with a known next close.
    """
    if refit_every < 1:
        raise SettingsError(f"invalid settings: refit_every: must be at least 1, got {refit_every}")
    months = windows.months
    earliest = first_allowed_month(windows) if len(windows) >= MIN_ROLLING_SAMPLES else None
    latest = (
        pd.Timestamp(months[-2]) if len(months) > 1 else None
    )  # forecast month of the last window
    if earliest is None or latest is None or earliest > latest:
        raise SettingsError(
            f"invalid settings: a rolling evaluation needs more than {MIN_ROLLING_SAMPLES}"
            f" windows; the data gives {len(windows)}"
        )
    if evaluate_from is None:
        start = max(pd.Timestamp("1975-01-01"), earliest)
    else:
        start = pd.Timestamp(f"{evaluate_from}-01")
        if start < earliest or start > latest:
            raise SettingsError(
                f"invalid settings: evaluate_from: {evaluate_from} is outside {earliest:%Y-%m}"
                f" … {latest:%Y-%m} (the first origin needs {MIN_ROLLING_SAMPLES} windows, and"
                " a later month to forecast)"
            )
    start = min(start, latest)
    first = int(np.searchsorted(months, start, side="right"))  # windows with target ≤ start
    cuts = tuple(range(first, len(windows), refit_every))
    stops = (*cuts[1:], len(windows))
    return RollingPlan(cuts=cuts, stops=stops, horizon=horizon)


def _path_frame(
    model: str, windows: Windows, plan: RollingPlan, k: int, paths: np.ndarray
) -> pd.DataFrame:
    """Rows of origin k's forecasts whose target month has arrived."""
    cut, stop = plan.cuts[k], plan.stops[k]
    rows = []
    n = len(windows)
    origin = windows.months[cut - 1]
    for j in range(cut, stop):
        made = windows.months[j] - pd.DateOffset(months=1)
        for h in range(1, plan.horizon + 1):
            target = j + h - 1
            if target >= n:
                break
            rows.append(
                {
                    "model": model,
                    "origin_month": origin,
                    "forecast_month": made,
                    "horizon": h,
                    "target_month": windows.months[target],
                    "point": float(paths[j - cut, h - 1]),
                    "actual": float(windows.y[target]),
                }
            )
    return pd.DataFrame(rows)


def origin_blocks(windows: Windows, plan: RollingPlan) -> list[np.ndarray]:
    """Each origin's forecast windows, ``windows.X[cut:stop]``."""
    return [windows.X[c:s] for c, s in zip(plan.cuts, plan.stops, strict=True)]


def rolling_frame(
    model: str, windows: Windows, plan: RollingPlan, origins: OriginModels
) -> pd.DataFrame:
    """Every origin's recursive forecasts 1 … H from every month until the next origin.

    Returns:
        Rows ``model, origin_month, forecast_month, horizon, target_month, point, actual``
        (bands are added by ``calibrate_rolling``).
    """
    return paths_frame(
        model, windows, plan, origins.paths(origin_blocks(windows, plan), plan.horizon)
    )


def paths_frame(
    model: str, windows: Windows, plan: RollingPlan, paths: list[np.ndarray]
) -> pd.DataFrame:
    """``rolling_frame``'s rows from each origin's paths, ``(n_k, H)`` on ``origin_blocks``."""
    frames = [_path_frame(model, windows, plan, k, p) for k, p in enumerate(paths)]
    return pd.concat(frames, ignore_index=True)


def rolling_forecasts(
    model: str,
    windows: Windows,
    plan: RollingPlan,
    *,
    scaling: ScalingName,
    epochs: int,
    batch_size: int,
    seed: int,
    seeds: int = 1,
) -> tuple[pd.DataFrame, float]:
    """Every origin's fits (``tasks.models.fit.fit_origins``) and their forecasts; seconds.

    A network fits ``seeds`` members per origin (seeds ``seed`` …), all in one stacked fit,
    and forecasts with each origin's ensemble; a baseline ignores ``seeds``.
    """
    origins, seconds = fit_origins(
        model,
        windows,
        plan.cuts,
        scaling=scaling,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        seeds=seeds,
    )
    return rolling_frame(model, windows, plan, origins), seconds


_KEYS = ["origin_month", "forecast_month", "horizon", "target_month"]
FORECAST_COLUMNS = ["model", *_KEYS, "point", "actual"]  # rolling_forecasts's, before bands


def combine_rolling(name: str, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """A combination's rolling forecasts (``mean``): its components' points, row by row.

    Every component went through the same plan, so each has the same rows; the point of the
    combination at (forecast month, horizon) is the mean of theirs.

    Raises:
        ValueError: no components, or components whose rows differ.
    """
    if not frames:
        raise ValueError(f"{name} needs at least one model's rolling forecasts to combine")
    keyed = [f.set_index(_KEYS).sort_index() for f in frames]
    first = keyed[0]
    if any(not k.index.equals(first.index) for k in keyed[1:]):
        raise ValueError(f"{name}: the rolling forecasts to combine cover different months")
    points = np.mean([k["point"].to_numpy() for k in keyed], axis=0)
    out = first[["actual"]].assign(point=points, model=name).reset_index()
    return out[FORECAST_COLUMNS]


def _month_number(months: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    stamps = pd.DatetimeIndex(months)
    return (stamps.year * 12 + stamps.month - 1).to_numpy(dtype=np.int64)


STAND_INS = ("naive", "drift")


def stand_in_errors(
    windows: Windows, horizon: int, before: pd.Timestamp, baseline: str = "naive"
) -> np.ndarray:
    """A baseline's h-step log errors whose target month is ≤ ``before``: the bands' stand-in.

    From the window ending at month t, naive forecasts its last close for t + h, so its
    error is the index's h-month log move ``log(close[t + h] / close[t])``; drift
    forecasts ``close[t] * exp(h * mu_t)``, mu_t the mean monthly log return of every close
    up to t, so its error is that move less ``h * mu_t``.

    Raises:
        ValueError: ``baseline`` is not one of ``STAND_INS``.
    """
    if baseline not in STAND_INS:
        raise ValueError(f"a stand-in comes from {' or '.join(STAND_INS)}, not {baseline!r}")
    targets = np.arange(horizon - 1, len(windows))
    starts = targets - (horizon - 1)
    known = windows.months[targets] <= before
    moves = np.log(windows.y[targets[known]] / windows.last[starts[known]])
    if baseline == "naive":
        return moves
    width = windows.X.shape[1]
    logs = np.log(np.concatenate([windows.X[0], windows.y]))
    at = starts[known] + width - 1  # index of the close at t
    mean_return = (logs[at] - logs[0]) / np.maximum(at, 1)
    return moves - horizon * mean_return


def past_moves(windows: Windows) -> PastMoves:
    """Every close of the series behind ``windows`` (the first window's inputs, then targets)."""
    first = int(_month_number(pd.DatetimeIndex([windows.months[0]]))[0])
    width = windows.X.shape[1]
    months = np.arange(first - width, first + len(windows), dtype=np.int64)
    return PastMoves(months, np.concatenate([windows.X[0], windows.y]))


def guard_offsets(
    lower: dict[float, np.ndarray],
    upper: dict[float, np.ndarray],
    points: np.ndarray,
    query: np.ndarray,
    moves: PastMoves,
) -> None:
    """``within_past_moves`` for ``(months, H)`` offsets and points at months ``query``."""
    close, worst, best = moves.at(query, points.shape[1])
    within_past_moves(lower, upper, np.log(points / close[:, None]), worst, best)


def calibrate_rolling(
    forecasts: pd.DataFrame,
    windows: Windows,
    make_calibrator: Callable[[], Calibrator] = default_calibrator,
    *,
    stand_in: bool = True,
    monotone: bool = True,
    guard: bool = True,
    stand_in_baseline: str = "naive",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add online bands to one model's rolling forecasts; also the bands after the last month.

    Every horizon is banded at every forecast month (and at the last month, for the live
    forecast) from its stand-in (naive's earlier errors) and the errors arrived by then,
    made monotone in h and kept within the index's own moves
    (``tasks.evaluation.calibrate``). ``stand_in``, ``monotone`` and ``guard`` switch those
    steps off, and ``stand_in_baseline`` names another stand-in, for
    ``benchmarks/calibration.py``.

    Returns:
        The forecasts with ``lower_80 … upper_95`` (prices; NaN during the warm-up), and the
        live bands: one row per horizon, ``horizon, lower_80 … upper_95`` as log offsets
        from the point (NaN where the horizon has too few errors yet).
    """
    out = forecasts.sort_values(["forecast_month", "horizon"], kind="stable").reset_index(drop=True)
    last = int(_month_number(pd.DatetimeIndex([windows.months[-1]]))[0])
    made = _month_number(out["forecast_month"])
    query = np.union1d(made, [last])
    first = pd.Timestamp(out["forecast_month"].min())
    horizons = range(1, int(out["horizon"].max()) + 1)
    errors_by_h, history_by_h = {}, {}
    for h in horizons:
        at_h = (out["horizon"] == h).to_numpy()
        errors = np.log(out.loc[at_h, "actual"].to_numpy() / out.loc[at_h, "point"].to_numpy())
        errors_by_h[h] = (made[at_h], errors)
        history_by_h[h] = (
            stand_in_errors(windows, h, first, stand_in_baseline) if stand_in else None
        )
    banded = band_every_horizon(
        errors_by_h, query, history_by_h, make_calibrator, monotone=monotone
    )
    rows = np.searchsorted(query, made)
    columns = out["horizon"].to_numpy() - 1
    point = out["point"].to_numpy()
    points = np.full((len(query), len(horizons)), np.nan)
    points[rows, columns] = point
    if guard:
        guard_offsets(banded.lower, banded.upper, points, query, past_moves(windows))
    live: dict[str, object] = {"horizon": list(horizons)}
    for level in LEVELS:
        pct = round(level * 100)
        out[f"lower_{pct}"] = point * np.exp(banded.lower[level][rows, columns])
        out[f"upper_{pct}"] = point * np.exp(banded.upper[level][rows, columns])
        live[f"lower_{pct}"] = banded.lower[level][-1]
        live[f"upper_{pct}"] = banded.upper[level][-1]
    return out[ROLLING_COLUMNS], pd.DataFrame(live)


def naive_points(forecasts: pd.DataFrame, windows: Windows) -> np.ndarray:
    """Naive's forecast for each row: the close of its forecast month (flat at every h)."""
    index = {m: i for i, m in enumerate(windows.months)}
    targets = forecasts["forecast_month"] + pd.DateOffset(months=1)
    return windows.last[[index[m] for m in targets]]


def rolling_metrics(predictions: pd.DataFrame, windows: Windows) -> pd.DataFrame:
    """Per model and horizon: accuracy against naive, and coverage and scores of the bands.

    ``coverage_*``, ``interval_score_*`` (Winkler, index points) and ``width_95`` (the
    95 % band's width as a share of the point) count only forecasts that have a band;
    ``coverage_*_low`` / ``_high`` bound each coverage by a 90 % block-bootstrap interval
    (one bootstrap per horizon, resampling the same months for every model).
    """
    rows = []
    hits: dict[tuple[str, int, int], pd.Series] = {}  # (model, h, level %) -> hit by month
    predictions = predictions.reset_index(drop=True)
    naive = naive_points(predictions, windows)
    for (model, h), group in predictions.groupby(["model", "horizon"], sort=False):
        actual, point = group["actual"].to_numpy(), group["point"].to_numpy()
        naive_rmse = rmse(actual, naive[group.index])
        banded = group.dropna(subset=["lower_95"])
        row = {
            "model": model,
            "horizon": int(h),
            "n": len(group),
            "rmse": rmse(actual, point),
            "mae": mae(actual, point),
            "theil_u2": rmse(actual, point) / naive_rmse if naive_rmse > 0 else math.nan,
        }
        for level in LEVELS:
            pct = round(level * 100)
            low, high = banded[f"lower_{pct}"], banded[f"upper_{pct}"]
            inside = (banded["actual"] >= low) & (banded["actual"] <= high)
            hits[(str(model), int(h), pct)] = inside.set_axis(banded["forecast_month"])
            row[f"coverage_{pct}"] = float(inside.mean()) if len(banded) else math.nan
            scores = interval_score(banded["actual"], low, high, level)
            row[f"interval_score_{pct}"] = float(np.mean(scores)) if len(banded) else math.nan
        width = (banded["upper_95"] - banded["lower_95"]) / banded["point"]
        row["width_95"] = float(width.mean()) if len(banded) else math.nan
        rows.append(row)
    metrics = pd.DataFrame(rows, columns=ROLLING_METRIC_COLUMNS)
    # one bootstrap per horizon: every model's hits resampled on the same months
    for h in sorted({key[1] for key in hits}):
        keys = [key for key in hits if key[1] == h]
        table = pd.concat([hits[k].astype(float) for k in keys], axis=1).sort_index()
        lows, highs = coverage_intervals(table.to_numpy(), h)
        for k, (model, _, pct) in enumerate(keys):
            at = (metrics["model"] == model) & (metrics["horizon"] == h)
            metrics.loc[at, f"coverage_{pct}_low"] = lows[k]
            metrics.loc[at, f"coverage_{pct}_high"] = highs[k]
    return metrics


def rolling_comparisons(predictions: pd.DataFrame) -> pd.DataFrame:
    """Diebold-Mariano tests of the due-diligence pairs at every horizon (lag h - 1, HLN).

    Errors are in index points, paired on the forecast month.
    """
    errors = predictions.assign(error=predictions["actual"] - predictions["point"])
    frames = []
    for h, at_h in errors.groupby("horizon", sort=True):
        by_model = {
            m: g.set_index("forecast_month")["error"] for m, g in at_h.groupby("model", sort=False)
        }
        frames.append(compare_errors(by_model, "rolling", int(h)))
    return pd.concat(frames, ignore_index=True)[COMPARISON_COLUMNS]


@dataclass(frozen=True)
class RollingResults:
    """A run's rolling evaluation: forecasts with bands, scores, tests, champions, live bands.

    ``live`` holds, per model and horizon, the log offsets of the bands a forecast made at the
    last month gets (``model, horizon, lower_80 … upper_95``; NaN before the warm-up ends).
    """

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    champions: pd.DataFrame
    live: pd.DataFrame


def score_rolling(
    frames: list[pd.DataFrame], windows: Windows, n_params: dict[str, int]
) -> RollingResults:
    """Calibrate every model's rolling forecasts, score them and choose the champions.

    ``n_params`` (trainable parameters per model) decides among the kept models.
    """
    calibrated, live = [], []
    for frame in frames:
        banded, bands = calibrate_rolling(frame, windows)
        calibrated.append(banded)
        live.append(bands.assign(model=frame["model"].iloc[0]))
    predictions = pd.concat(calibrated, ignore_index=True)
    metrics = rolling_metrics(predictions, windows)
    comparisons = rolling_comparisons(predictions)
    return RollingResults(
        predictions=predictions,
        metrics=metrics,
        comparisons=comparisons,
        champions=choose_champions(predictions, metrics, comparisons, n_params),
        live=pd.concat(live, ignore_index=True),
    )


@task(name="plan_rolling", cache_policy=NO_CACHE)
def plan_rolling_task(windows: Windows, settings: Settings) -> RollingPlan:
    """The run's rolling origins from its settings; impossible ones fail in one line."""
    plan = plan_rolling(windows, settings.evaluate_from, settings.refit_every, settings.horizon)
    get_run_logger().info(
        "rolling evaluation: %d origins every %d months, forecasts from %s",
        len(plan.cuts),
        settings.refit_every,
        f"{windows.months[plan.first] - pd.DateOffset(months=1):%Y-%m}",
    )
    return plan


@task(name="make_rolling_paths", task_run_name="rolling-paths-{name}", cache_policy=NO_CACHE)
def make_rolling_paths(
    name: str, windows: Windows, plan: RollingPlan, paths: list[np.ndarray]
) -> pd.DataFrame:
    """One model's rolling forecasts from its origins' paths on ``origin_blocks``."""
    frame = paths_frame(name, windows, plan, paths)
    get_run_logger().info("%s: %d rolling forecasts", name, len(frame))
    return frame


@task(name="combine_rolling", task_run_name="rolling-{name}", cache_policy=NO_CACHE)
def combine_rolling_task(name: str, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """A combination's rolling forecasts from its components' (no fit of its own)."""
    frame = combine_rolling(name, frames)
    get_run_logger().info(
        "%s: rolling forecasts, mean of %s", name, ", ".join(f["model"].iloc[0] for f in frames)
    )
    return frame


@task(name="score_rolling", cache_policy=NO_CACHE)
def score_rolling_task(
    frames: list[pd.DataFrame], windows: Windows, n_params: dict[str, int]
) -> RollingResults:
    """Bands, scores, per-horizon tests and champions of the rolling evaluation."""
    results = score_rolling(frames, windows, n_params)
    logger = get_run_logger()
    for row in results.champions.itertuples(index=False):
        if row.horizon in (1, 3, 6, 12):
            logger.info(
                "champion at h = %d: %s (rmse %.1f; best %s; kept %s)",
                row.horizon,
                row.model,
                row.rmse,
                row.best_model,
                row.kept,
            )
    return results
