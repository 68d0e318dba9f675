"""Online bands from past errors: per horizon, per side, adapted as each actual arrives.

The band of a forecast made at month t for horizon h uses only errors whose target month is
≤ t, i.e. those of forecasts made at t - h or earlier. Errors are signed log errors,
``e = log(actual / point)``, so a band learned when the index stood at 100 scales to today's
level. The lower and upper bounds are quantiles of those errors taken separately (a fall and
a rise need not be alike), with the finite-sample correction of split conformal prediction:
of n past errors, the upper bound at miss rate a is the ⌈(n + 1)(1 - a)⌉-th smallest and
the lower bound the ⌊(n + 1) a⌋-th smallest.

Each side's miss rate is adapted online by Adaptive Conformal Inference (Gibbs & Candès
2021): when the actual of a forecast arrives, a_side ← a_side + gamma (alpha/2 - miss_side), so a
side that misses too often widens and one that never misses narrows. For any sequence of
data, each side's long-run miss rate stays within (max(a_1, 1 - a_1) + gamma) / (gamma T) of alpha/2
over T updates. (A level past the largest or smallest error takes that error: with
``WARM_UP`` errors or more that caps a side at most a few steps.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVELS = (0.80, 0.95)
GAMMA = 0.005  # ACI step: ~1/gamma = 200 updates to move a side's miss rate by one unit
WARM_UP = 24  # errors a horizon needs before its first band (two years at h = 1)


def conformal_quantiles(errors: np.ndarray, a_low: float, a_high: float) -> tuple[float, float]:
    """Lower and upper bounds from sorted-or-not ``errors`` at miss rates ``a_low``, ``a_high``.

    The (n + 1)/n-corrected order statistics; a level beyond the sample takes its extreme.
    """
    ordered = np.sort(np.asarray(errors, dtype=np.float64))
    n = len(ordered)
    if n == 0:
        raise ValueError("a band needs at least one past error")
    low_rank = math.floor((n + 1) * a_low)  # 1-based; 0 means "below every error"
    high_rank = math.ceil((n + 1) * (1.0 - a_high))  # n + 1 means "above every error"
    low = ordered[min(max(low_rank, 1), n) - 1]
    high = ordered[min(max(high_rank, 1), n) - 1]
    return float(low), float(high)


@dataclass(frozen=True)
class Bands:
    """Per forecast (row of the input), log-scale bounds per level; NaN during warm-up.

    ``lower[level]`` and ``upper[level]`` are arrays of log errors: the band of point p is
    ``p * exp(lower) … p * exp(upper)``. ``final_lower`` / ``final_upper`` are the bounds a
    new forecast made after the last month would get (the live forecast's).
    """

    lower: dict[float, np.ndarray]
    upper: dict[float, np.ndarray]
    final_lower: dict[float, float]
    final_upper: dict[float, float]


def online_bands(
    forecast_index: np.ndarray,
    horizon: int,
    errors: np.ndarray,
    last_index: int,
    *,
    gamma: float = GAMMA,
    warm_up: int = WARM_UP,
    levels: tuple[float, ...] = LEVELS,
) -> Bands:
    """Bands for one model at one horizon, built month by month from earlier errors only.

    ``forecast_index[k]`` is the month (an integer month count) forecast k was made at, its
    target ``forecast_index[k] + horizon``; ``errors[k]`` its log error (known at the
    target). Months must be strictly increasing. ``last_index`` is the last month with data:
    the final bounds use every error whose target is ≤ it and the adapted levels then.
    """
    made = np.asarray(forecast_index, dtype=np.int64)
    errors = np.asarray(errors, dtype=np.float64)
    if made.shape != errors.shape or made.ndim != 1:
        raise ValueError("forecast months and errors must be 1-D arrays of one length")
    if len(made) > 1 and not np.all(np.diff(made) > 0):
        raise ValueError("forecast months must be strictly increasing")
    targets = made + horizon
    n = len(made)
    lower = {level: np.full(n, np.nan) for level in levels}
    upper = {level: np.full(n, np.nan) for level in levels}
    a_low = {level: (1.0 - level) / 2 for level in levels}
    a_high = dict(a_low)
    known = 0  # errors[:known] have arrived (their target month ≤ the current month)
    final_lower = dict.fromkeys(levels, math.nan)
    final_upper = dict.fromkeys(levels, math.nan)
    for k in range(n + 1):
        now = made[k] if k < n else last_index
        # every actual that has arrived by month `now` updates the levels, oldest first
        while known < n and targets[known] <= now:
            for level in levels:
                if not math.isnan(lower[level][known]):
                    target = (1.0 - level) / 2
                    a_low[level] += gamma * (target - float(errors[known] < lower[level][known]))
                    a_high[level] += gamma * (target - float(errors[known] > upper[level][known]))
            known += 1
        if known < warm_up:
            continue
        for level in levels:
            low, high = conformal_quantiles(errors[:known], a_low[level], a_high[level])
            if k < n:
                lower[level][k], upper[level][k] = low, high
            else:
                final_lower[level], final_upper[level] = low, high
    return Bands(lower, upper, final_lower, final_upper)


def interval_score(
    actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float
) -> np.ndarray:
    """Winkler's interval score of each band at ``level``: width plus 2/alpha times any miss."""
    alpha = 1.0 - level
    actual, lower, upper = (np.asarray(a, dtype=np.float64) for a in (actual, lower, upper))
    below = np.maximum(lower - actual, 0.0)
    above = np.maximum(actual - upper, 0.0)
    return (upper - lower) + (2.0 / alpha) * (below + above)
