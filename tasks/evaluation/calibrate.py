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
data, a side's miss rate over T updates differs from alpha/2 by exactly
(a_1 - a_{T+1}) / (gamma T), so it converges as long as a_side stays bounded. That needs a
band that keeps widening while misses go on: a level beyond the sample (a_side below
1 / (n + 1), which a run of misses drives it to) continues the empirical quantile function
past the extreme error at the slope of the side's own tail (from the extreme to the
nominal order statistic), instead of stopping at the extreme. A crash larger than any
before it (2000-02 and 2008-09 at twelve months) widens the band until it is covered
again; capped at the extreme, a_side would drift without bound and the side would go on
missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVELS = (0.80, 0.95)
GAMMA = 0.01  # ACI step: ~1/gamma = 100 updates to move a side's miss rate by one unit
WARM_UP = 24  # errors a horizon needs before its first band (two years at h = 1)


def conformal_quantiles(
    errors: np.ndarray, a_low: float, a_high: float, tail: float, *, extrapolate: bool = True
) -> tuple[float, float]:
    """Lower and upper bounds from sorted-or-not ``errors`` at miss rates ``a_low``, ``a_high``.

    The (n + 1)/n-corrected order statistics. A level beyond the sample continues past the
    extreme error, linearly in the rank, at the slope between the extreme and the order
    statistic of rank ⌈(n + 1) tail⌉ (``tail``: the side's nominal miss rate); with
    ``extrapolate=False`` it takes the extreme (the bands of earlier commits).
    """
    ordered = np.sort(np.asarray(errors, dtype=np.float64))
    n = len(ordered)
    if n == 0:
        raise ValueError("a band needs at least one past error")
    low_rank = (n + 1) * a_low  # 1-based rank, continuous; below 1: past the smallest error
    high_rank = (n + 1) * (1.0 - a_high)  # above n: past the largest error
    low = ordered[min(max(math.floor(low_rank), 1), n) - 1]
    high = ordered[min(max(math.ceil(high_rank), 1), n) - 1]
    if extrapolate and n > 1:
        k = min(max(math.ceil((n + 1) * tail), 2), n)  # the tail's nominal rank
        if low_rank < 1:
            low -= (1.0 - low_rank) * (ordered[k - 1] - ordered[0]) / (k - 1)
        if high_rank > n:
            high += (high_rank - n) * (ordered[-1] - ordered[n - k]) / (k - 1)
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
    extrapolate: bool = True,
) -> Bands:
    """Bands for one model at one horizon, built month by month from earlier errors only.

    ``forecast_index[k]`` is the month (an integer month count) forecast k was made at, its
    target ``forecast_index[k] + horizon``; ``errors[k]`` its log error (known at the
    target). Months must be strictly increasing. ``last_index`` is the last month with data:
    the final bounds use every error whose target is ≤ it and the adapted levels then.
    ``extrapolate=False`` caps a level beyond the sample at the extreme error.
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
            low, high = conformal_quantiles(
                errors[:known],
                a_low[level],
                a_high[level],
                (1.0 - level) / 2,
                extrapolate=extrapolate,
            )
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
