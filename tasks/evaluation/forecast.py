"""Forecasts of one model for months T+1 … T+H with empirical 80 % and 95 % intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.evaluation.calibrate import LEVELS, PastMoves, within_past_moves
from tasks.evaluation.evaluate import Evaluation
from tasks.models.train import TrainedModel


@dataclass(frozen=True)
class Forecast:
    """A point forecast for ``target_month`` with interval bounds, all in index points."""

    model: str
    target_month: pd.Timestamp
    horizon: int
    point: float
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float


BOUND_COLUMNS = ("lower_80", "upper_80", "lower_95", "upper_95")


def interval_bounds(point: float, actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Bounds from empirical quantiles of test residuals taken as log(actual / predicted).

    Residuals are relative so that an interval learned when the index stood at 1,300
    scales to today's level instead of staying a fixed number of points wide.
    """
    residuals = np.log(np.asarray(actual, dtype=np.float64) / np.asarray(predicted))
    q = np.quantile(residuals, [0.025, 0.10, 0.90, 0.975])
    return {
        "lower_95": point * float(np.exp(q[0])),
        "lower_80": point * float(np.exp(q[1])),
        "upper_80": point * float(np.exp(q[2])),
        "upper_95": point * float(np.exp(q[3])),
    }


def forecast_path(
    model: TrainedModel,
    last_window: np.ndarray,
    last_month: pd.Timestamp,
    evaluation: Evaluation,
    horizon: int = 1,
) -> list[Forecast]:
    """Forecast the ``horizon`` months after ``last_month`` from the final ``window`` closes.

    Month T+h is forecast by the model's own paths (recursively); its bands come from the
    evaluation fit's h-step errors over the test split, so they widen as h grows.
    """
    path = model.paths(np.array(last_window, dtype=np.float64, ndmin=2), horizon)[0]
    forecasts = []
    for h in range(1, horizon + 1):
        point = float(path[h - 1])
        forecasts.append(
            Forecast(
                model=model.name,
                target_month=pd.Timestamp(last_month) + pd.offsets.MonthBegin(h),
                horizon=h,
                point=point,
                **interval_bounds(point, *evaluation.step_errors(h)),
            )
        )
    return forecasts


def with_live_bands(
    forecasts: list[Forecast], live: pd.DataFrame, moves: PastMoves | None = None
) -> list[Forecast]:
    """The forecasts with the rolling evaluation's live bands wherever a horizon has them.

    ``live`` has ``model, horizon, lower_80 … upper_95`` as log offsets from the point (the
    online bands of ``tasks.evaluation.calibrate`` after the last month, monotone in h).
    With ``moves`` (the series' closes) every band is then kept inside the index's own
    h-month moves so far (``calibrate.within_past_moves``). A horizon still in the bands'
    warm-up keeps the test-split bands.
    """
    offsets = live.set_index(["model", "horizon"])
    out = []
    for model in dict.fromkeys(f.model for f in forecasts):
        path = sorted((f for f in forecasts if f.model == model), key=lambda f: f.horizon)
        keys = [(model, f.horizon) for f in path]
        known = [k in offsets.index and np.isfinite(offsets.loc[k]).all() for k in keys]
        if not any(known):
            out += path
            continue
        lower = {lv: np.full((1, len(path)), np.nan) for lv in LEVELS}
        upper = {lv: np.full((1, len(path)), np.nan) for lv in LEVELS}
        for i, (key, ok) in enumerate(zip(keys, known, strict=True)):
            if ok:
                for lv in LEVELS:
                    pct = round(lv * 100)
                    lower[lv][0, i] = offsets.loc[key, f"lower_{pct}"]
                    upper[lv][0, i] = offsets.loc[key, f"upper_{pct}"]
        if moves is not None:
            last = path[0].target_month - pd.offsets.MonthBegin(path[0].horizon)
            points = np.array([[f.point for f in path]])
            close, worst, best = moves.at(np.array([last.year * 12 + last.month - 1]), len(path))
            within_past_moves(lower, upper, np.log(points / close[:, None]), worst, best)
        for i, (f, ok) in enumerate(zip(path, known, strict=True)):
            if not ok:
                out.append(f)
                continue
            bounds = {}
            for lv in LEVELS:
                pct = round(lv * 100)
                bounds[f"lower_{pct}"] = f.point * float(np.exp(lower[lv][0, i]))
                bounds[f"upper_{pct}"] = f.point * float(np.exp(upper[lv][0, i]))
            out.append(Forecast(f.model, f.target_month, f.horizon, f.point, **bounds))
    return out


def log_forecasts(forecasts: list[Forecast]) -> None:
    """Log each model's first and last forecast month with its final bands."""
    logger = get_run_logger()
    for model in dict.fromkeys(f.model for f in forecasts):
        path = sorted((f for f in forecasts if f.model == model), key=lambda f: f.horizon)
        for f in (path[0], path[-1]) if len(path) > 1 else path:
            logger.info(
                "%s: %s forecast %.1f (80 %% %.1f … %.1f, 95 %% %.1f … %.1f)",
                f.model,
                f.target_month.strftime("%Y-%m"),
                f.point,
                f.lower_80,
                f.upper_80,
                f.lower_95,
                f.upper_95,
            )


@task(name="forecast_next", task_run_name="forecast-{model.name}", cache_policy=NO_CACHE)
def forecast_next(
    model: TrainedModel,
    prices: pd.DataFrame,
    window: int,
    evaluation: Evaluation,
    horizon: int = 1,
) -> list[Forecast]:
    """Forecast the next ``horizon`` months for one model from the last ``window`` closes.

    The bands are provisional (the test split's) until ``band_forecasts`` replaces them, so
    nothing is logged here but the points.
    """
    result = forecast_path(
        model, prices["close"].to_numpy()[-window:], prices["month"].iloc[-1], evaluation, horizon
    )
    first, last = result[0], result[-1]
    get_run_logger().info(
        "%s: forecast %.1f for %s … %.1f for %s (bands once the rolling evaluation is scored)",
        model.name,
        first.point,
        f"{first.target_month:%Y-%m}",
        last.point,
        f"{last.target_month:%Y-%m}",
    )
    return result


@task(name="band_forecasts", cache_policy=NO_CACHE)
def band_forecasts(
    forecasts: list[Forecast], live: pd.DataFrame, moves: PastMoves
) -> list[Forecast]:
    """The live forecasts with their final bands (``with_live_bands``), logged once final."""
    result = with_live_bands(forecasts, live, moves)
    log_forecasts(result)
    return result
