"""Online bands from past errors: per horizon and side, chosen by a proper score, monotone in h.

The band of a forecast made at month t for horizon h uses only errors whose target month is
≤ t. Errors are signed log errors, ``e = log(actual / point)``, so a band learned when the
index stood at 100 scales to today's level; each side (lower, upper) is a quantile of its
own, so a fall and a rise need not be alike.

**The pool of past errors.** The model's own h-step errors that have arrived by t, after a
stand-in history: the errors naive made at the same horizon before the rolling evaluation's
first month (the index's h-month log moves since the series began). A network has no
forecasts before its first origin, but a band for 1977 built from 1975-76 alone has never
seen a bear market; with the stand-in it knows 1962, 1970 and 1973-74 from the start. Only
errors dated before t enter, so nothing leaks (``benchmarks/calibration.py`` compares with
and without it).

**The calibrators** (each a small object that bands a month and learns when an actual
arrives):

- ``Conformal``: the split-conformal order statistics of the pool: of n errors, the lower
  bound at miss rate a is the ⌊(n + 1) a⌋-th smallest, the upper the ⌈(n + 1)(1 - a)⌉-th.
- ``BoundedACI``: the same with each side's miss rate adapted by Adaptive Conformal
  Inference (Gibbs & Candès 2021), a ← a + gamma (alpha/2 - miss), updated at lag h when the actual
  arrives, and kept inside [1/(n + 1), 1/2]: a level never leaves the sample.
- ``QuantileTracker``: the P part of conformal PID control (Angelopoulos, Candès &
  Tibshirani 2023) on the log-error scale, q ← q ± η (miss - alpha/2), with η a fixed share of
  the spread (standard deviation) of the last ``SPREAD_WINDOW`` errors, clipped to the
  pool's range.
- ``Choice``: runs several of the above side by side and takes, at month t, each bound
  (level and side) from the candidate whose past bounds of that level and side (errors
  arrived by t) have the lowest pinball loss: an online choice by a proper score (the
  interval score is the sum of the two bounds' pinball losses, times 2/alpha), like
  DtACI's (Gibbs & Candès 2022) reweighting by pinball loss, but a hard one.

``default_calibrator`` is a choice among a conformal quantile, two trackers and a bounded
ACI: the variant with the lowest interval score in ``benchmarks/calibration.py`` among
those whose coverage holds up (docs/pipeline.md, step 10). No bound ever lies beyond the
largest past error of its side. The pinball loss is written out (one line) rather than
called from ``scoringrules``: it runs once per candidate and bound at every arrival, where
a library call per scalar costs more than the whole band.

**Monotone in h.** A band for T+6 narrower than the band for T+5 is not believable. After
every horizon is banded, each side's log distance from the point is made non-decreasing in
h at every month, by isotonic regression (pool-adjacent-violators,
``scipy.optimize.isotonic_regression``); this is order-preserving, so the 95 % band still
contains the 80 % band.

**Within the index's own moves** (``within_past_moves``). No band claims a fall or a rise
larger than the index made over h months up to the month it is made; each cap is replaced
by its minimum over h and the longer horizons, so a capped path stays monotone.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from arch.bootstrap import StationaryBootstrap, optimal_block_length
from scipy.optimize import isotonic_regression

LEVELS = (0.80, 0.95)
WARM_UP = 24  # errors (stand-in and own) a horizon needs before its first band
SPREAD_WINDOW = 60  # errors whose spread scales a quantile tracker's step
BOOTSTRAP_REPS = 1000
BOOTSTRAP_SEED = 20260101  # fixed: a run's coverage intervals are reproducible

Bounds = dict[float, tuple[float, float]]  # level -> (lower, upper) log offsets


class ChosenBounds(dict[float, tuple[float, float]]):
    """The bounds a ``Choice`` issued, carrying every candidate's so each can learn."""

    def __init__(self, chosen: Bounds, every: list[Bounds]) -> None:
        """``chosen`` (one of ``every``) and every candidate's bounds, in candidate order."""
        super().__init__(chosen)
        self.every = every


def side_miss_rate(level: float) -> float:
    """The nominal miss rate of one side of a central band at ``level``."""
    return (1.0 - level) / 2


class ErrorPool:
    """Past errors in arrival order and sorted, with the order statistics a band reads."""

    def __init__(self, history: np.ndarray | None = None) -> None:
        """Start from ``history`` (the stand-in errors, all dated before the first band)."""
        start = [] if history is None else [float(e) for e in np.asarray(history).ravel()]
        self.arrived: list[float] = list(start)
        self.sorted: list[float] = sorted(start)
        recent = self.arrived[-SPREAD_WINDOW:]
        self._sum, self._squares = math.fsum(recent), math.fsum(e * e for e in recent)

    def __len__(self) -> int:
        """How many errors the pool holds."""
        return len(self.sorted)

    def add(self, error: float) -> None:
        """An error whose actual has arrived."""
        self.arrived.append(float(error))
        bisect.insort(self.sorted, float(error))
        self._sum += error
        self._squares += error * error
        if len(self.arrived) > SPREAD_WINDOW:  # the oldest of the window leaves it
            old = self.arrived[-SPREAD_WINDOW - 1]
            self._sum -= old
            self._squares -= old * old

    def order_statistic(self, rank: int) -> float:
        """The ``rank``-th smallest error (1-based), ranks clipped to the sample."""
        return self.sorted[min(max(rank, 1), len(self.sorted)) - 1]

    def conformal(self, a_low: float, a_high: float) -> tuple[float, float]:
        """The (n + 1)/n-corrected order statistics at side miss rates ``a_low``, ``a_high``."""
        n = len(self.sorted)
        return (
            self.order_statistic(math.floor((n + 1) * a_low)),
            self.order_statistic(math.ceil((n + 1) * (1.0 - a_high))),
        )

    def spread(self) -> float:
        """Standard deviation of the most recent ``SPREAD_WINDOW`` errors."""
        n = min(len(self.arrived), SPREAD_WINDOW)
        if n < 2:
            return 0.0
        variance = (self._squares - self._sum * self._sum / n) / (n - 1)
        return math.sqrt(max(variance, 0.0))


class Calibrator:
    """Bands a month from the pool (``bounds``) and learns from an arrived error (``update``)."""

    name = "calibrator"

    def bounds(self, pool: ErrorPool) -> Bounds:  # pragma: no cover - interface
        """The band's log offsets at each level, from the errors arrived so far."""
        raise NotImplementedError

    def update(self, error: float, issued: Bounds, pool: ErrorPool) -> None:
        """The actual of a forecast banded ``issued`` arrived with log ``error``."""


class Conformal(Calibrator):
    """The pool's conformal quantiles at the nominal miss rates (no adaptation)."""

    name = "conformal"

    def bounds(self, pool: ErrorPool) -> Bounds:  # noqa: D102
        return {lv: pool.conformal(side_miss_rate(lv), side_miss_rate(lv)) for lv in LEVELS}


class BoundedACI(Calibrator):
    """Conformal quantiles at miss rates adapted by ACI, each kept in [1/(n + 1), 1/2]."""

    def __init__(self, gamma: float) -> None:
        """ACI with step ``gamma``."""
        self.gamma = gamma
        self.name = f"bounded ACI, gamma {gamma:g}"
        self.rates = {lv: [side_miss_rate(lv), side_miss_rate(lv)] for lv in LEVELS}

    def bounds(self, pool: ErrorPool) -> Bounds:  # noqa: D102
        floor = 1.0 / (len(pool) + 1)
        out = {}
        for level, rates in self.rates.items():
            rates[:] = [min(max(r, floor), 0.5) for r in rates]
            out[level] = pool.conformal(*rates)
        return out

    def update(self, error: float, issued: Bounds, pool: ErrorPool) -> None:  # noqa: D102
        for level, (low, high) in issued.items():
            target = side_miss_rate(level)
            self.rates[level][0] += self.gamma * (target - float(error < low))
            self.rates[level][1] += self.gamma * (target - float(error > high))


class QuantileTracker(Calibrator):
    """Each bound tracked directly: out by η (1 - alpha/2) on a miss, in by η alpha/2 otherwise."""

    def __init__(self, rate: float) -> None:
        """Step ``rate`` times the spread of recent errors."""
        self.rate = rate
        self.name = f"quantile tracking, step {rate:g} x spread"
        self.offsets: dict[float, list[float]] | None = None

    def bounds(self, pool: ErrorPool) -> Bounds:  # noqa: D102
        if self.offsets is None:  # start where the conformal quantiles stand
            self.offsets = {lv: list(Conformal().bounds(pool)[lv]) for lv in LEVELS}
        low_limit, high_limit = pool.sorted[0], pool.sorted[-1]
        out = {}
        for level, offsets in self.offsets.items():
            offsets[:] = [min(max(o, low_limit), high_limit) for o in offsets]
            out[level] = (offsets[0], offsets[1])
        return out

    def update(self, error: float, issued: Bounds, pool: ErrorPool) -> None:  # noqa: D102
        if self.offsets is None:
            return
        step = self.rate * pool.spread()
        for level, offsets in self.offsets.items():
            target = side_miss_rate(level)
            offsets[0] -= step * (float(error < offsets[0]) - target)
            offsets[1] += step * (float(error > offsets[1]) - target)


def pinball_loss(error: float, bound: float, quantile: float) -> float:
    """The quantile (pinball) loss of ``bound`` as the ``quantile``-th quantile of ``error``."""
    return float((quantile - float(error < bound)) * (error - bound))


class Choice(Calibrator):
    """Several calibrators side by side; each bound at month t is the best past one's.

    A band is two quantile forecasts per level, and the interval score is the sum of their
    pinball losses times 2/alpha; so each bound (level and side) is taken from the candidate
    whose earlier bounds of that level and side, scored as their actuals arrived, have the
    lowest pinball loss (ties: the first). A side that a fixed quantile over-covers can take
    an adapting candidate while the other side keeps the fixed one.
    """

    def __init__(self, candidates: Sequence[Calibrator]) -> None:
        """Choose among ``candidates``."""
        self.candidates = list(candidates)
        # per level, the lower and the upper side's summed loss of each candidate: plain
        # floats, since this runs at every month of every horizon and model (numpy's
        # per-element indexing cost more than the sums)
        self.losses = {
            lv: ([0.0] * len(self.candidates), [0.0] * len(self.candidates)) for lv in LEVELS
        }
        self.name = "choice among " + ", ".join(c.name for c in self.candidates)

    def bounds(self, pool: ErrorPool) -> Bounds:  # noqa: D102
        every = [c.bounds(pool) for c in self.candidates]
        chosen = {}
        for level, (lows, highs) in self.losses.items():
            low = min(range(len(lows)), key=lows.__getitem__)  # ties: the first
            high = min(range(len(highs)), key=highs.__getitem__)
            chosen[level] = (every[low][level][0], every[high][level][1])
        return ChosenBounds(chosen, every)

    def update(self, error: float, issued: Bounds, pool: ErrorPool) -> None:  # noqa: D102
        if not isinstance(issued, ChosenBounds):
            raise TypeError("a Choice learns only from bounds it issued")
        for k, (candidate, bounds) in enumerate(zip(self.candidates, issued.every, strict=True)):
            candidate.update(error, bounds, pool)
            for level, (low, high) in bounds.items():
                tail = side_miss_rate(level)
                self.losses[level][0][k] += pinball_loss(error, low, tail)
                self.losses[level][1][k] += pinball_loss(error, high, 1.0 - tail)


def default_calibrator() -> Calibrator:
    """The run's calibrator (see the module docstring and docs/pipeline.md, step 10)."""
    return Choice([Conformal(), QuantileTracker(0.05), QuantileTracker(0.1), BoundedACI(0.005)])


@dataclass(frozen=True)
class Offsets:
    """Log offsets of one horizon's bands at each queried month; NaN before the warm-up."""

    lower: dict[float, np.ndarray]
    upper: dict[float, np.ndarray]


def online_offsets(
    forecast_index: np.ndarray,
    horizon: int,
    errors: np.ndarray,
    query_index: np.ndarray,
    *,
    history: np.ndarray | None = None,
    calibrator: Calibrator | None = None,
    warm_up: int = WARM_UP,
) -> Offsets:
    """Bands for one model at one horizon at every month of ``query_index``.

    ``forecast_index[k]`` is the month (an integer month count) forecast k was made at and
    ``errors[k]`` its log error, known at its target ``forecast_index[k] + horizon``; both
    strictly increasing. The band at month t reads the stand-in ``history`` and every error
    whose target is ≤ t; each calibrator learns an error when it arrives, against the band
    it gave that forecast (forecasts made at months that are not queried are banded too,
    so the calibrator learns from every forecast).
    """
    made = np.asarray(forecast_index, dtype=np.int64)
    errors = np.asarray(errors, dtype=np.float64)
    query = np.asarray(query_index, dtype=np.int64)
    if made.shape != errors.shape or made.ndim != 1:
        raise ValueError("forecast months and errors must be 1-D arrays of one length")
    for months in (made, query):
        if len(months) > 1 and not np.all(np.diff(months) > 0):
            raise ValueError("forecast months must be strictly increasing")
    calibrator = calibrator or default_calibrator()
    pool = ErrorPool(history)
    targets = made + horizon
    lower = {level: np.full(len(query), np.nan) for level in LEVELS}
    upper = {level: np.full(len(query), np.nan) for level in LEVELS}
    issued: list[Bounds | None] = [None] * len(made)
    at_made = {int(m): k for k, m in enumerate(made)}
    at_query = {int(m): k for k, m in enumerate(query)}
    known = 0
    for now in sorted(set(at_made) | set(at_query)):
        while known < len(made) and targets[known] <= now:  # arrivals, oldest first
            band = issued[known]
            if band is not None:
                calibrator.update(float(errors[known]), band, pool)
            pool.add(float(errors[known]))
            known += 1
        if len(pool) < warm_up:
            continue
        bounds = calibrator.bounds(pool)
        if now in at_made:
            issued[at_made[now]] = bounds
        if now in at_query:
            for level, (low, high) in bounds.items():
                lower[level][at_query[now]] = min(low, high)
                upper[level][at_query[now]] = max(low, high)
    return Offsets(lower, upper)


def nest_and_sort(lower: dict[float, np.ndarray], upper: dict[float, np.ndarray]) -> None:
    """Make bands nested across levels and each side's distance non-decreasing in h, in place.

    ``lower[level]`` and ``upper[level]`` are ``(months, H)`` log offsets (NaN where a
    horizon has no band yet; a month's banded horizons are a prefix 1 … k, since errors
    at longer horizons arrive later). The wider level's side is first pushed out to the
    narrower level's where a tracker crossed it, then isotonic regression across h runs on
    each side's distance from the point.
    """
    levels = sorted(lower)
    for narrow, wide in itertools.pairwise(levels):
        lower[wide] = np.fmin(lower[wide], lower[narrow])
        upper[wide] = np.fmax(upper[wide], upper[narrow])
    for level in levels:
        for sign, offsets in ((-1.0, lower[level]), (1.0, upper[level])):
            for row in offsets:
                banded = int(np.sum(~np.isnan(row)))
                if banded > 1:
                    distance = sign * row[:banded]
                    row[:banded] = sign * isotonic_regression(distance).x


def within_past_moves(
    lower: dict[float, np.ndarray],
    upper: dict[float, np.ndarray],
    log_point_over_close: np.ndarray,
    worst: np.ndarray,
    best: np.ndarray,
) -> None:
    """Keep every band inside the index's own h-month history, monotone in h, in place.

    No bound may claim a fall or a rise beyond the largest the index made over h months up
    to the month the band is made: ``close * exp(worst[h]) ≤ lower`` and ``upper ≤ close *
    exp(best[h])``. In log distance from the point that caps the lower side's distance at
    ``log(point / close) - worst`` and the upper side's at ``best - log(point / close)``;
    each cap is replaced by its minimum over h and every longer horizon, so a capped side's
    distance stays non-decreasing in h (the minimum of two non-decreasing sequences). All
    arrays are ``(months, H)``; NaN caps (no point or no move yet) are ignored.
    """
    cap_low = _suffix_min(log_point_over_close - worst)
    cap_high = _suffix_min(best - log_point_over_close)
    for level, offsets in lower.items():
        lower[level] = np.where(np.isnan(cap_low), offsets, np.fmax(offsets, -cap_low))
    for level, offsets in upper.items():
        upper[level] = np.where(np.isnan(cap_high), offsets, np.fmin(offsets, cap_high))


@dataclass(frozen=True)
class PastMoves:
    """The index's closes by month, for the h-month moves a band may not go beyond."""

    months: np.ndarray  # integer month counts, increasing
    closes: np.ndarray

    def at(self, query: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """At each month of ``query``: the close, and ``(months, H)`` worst and best moves.

        A move is ``log(close[s + h] / close[s])`` over every s with s + h ≤ the month (NaN
        before the first such move).
        """
        logs = np.log(np.asarray(self.closes, dtype=np.float64))
        at = np.searchsorted(self.months, np.asarray(query), side="right") - 1
        close = np.where(at >= 0, np.asarray(self.closes)[np.maximum(at, 0)], np.nan)
        worst = np.full((len(at), horizon), np.nan)
        best = np.full((len(at), horizon), np.nan)
        for h in range(1, horizon + 1):
            if len(logs) <= h:
                continue
            moves = logs[h:] - logs[:-h]  # moves[i] arrives at month index i + h
            lowest, highest = np.minimum.accumulate(moves), np.maximum.accumulate(moves)
            known = at - h >= 0
            worst[known, h - 1] = lowest[at[known] - h]
            best[known, h - 1] = highest[at[known] - h]
        return close, worst, best


def _suffix_min(values: np.ndarray) -> np.ndarray:
    """Along the last axis, the minimum of each entry and every later one, NaN ignored."""
    filled = np.where(np.isnan(values), np.inf, values)
    out = np.minimum.accumulate(filled[..., ::-1], axis=-1)[..., ::-1]
    return np.where(np.isinf(out), np.nan, out)


def coverage_intervals(
    hits: np.ndarray, horizon: int, *, reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """90 % intervals of the mean of each column of ``hits`` (months in time order).

    A stationary block bootstrap (Politis & Romano 1994, ``arch.bootstrap``) with mean
    block length the larger of h (h-step forecasts made in consecutive months share h - 1
    months of their paths) and the Politis-White optimal length of the first column. NaN
    (a month a column has no band for) is left out of that column's means.

    Returns:
        The 5th and 95th percentiles of the bootstrap means, one per column.
    """
    data = np.asarray(hits, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if len(data) < 2:
        return np.full(data.shape[1], np.nan), np.full(data.shape[1], np.nan)
    block = float(horizon)
    first = data[~np.isnan(data[:, 0]), 0]
    if len(first) > 1 and np.std(first) > 0:
        optimal = float(optimal_block_length(first).iloc[0]["stationary"])
        if math.isfinite(optimal):
            block = max(block, optimal)
    block = min(block, len(data) / 2)
    bootstrap = StationaryBootstrap(max(1, math.ceil(block)), data, seed=seed)
    means = bootstrap.apply(lambda x: np.nanmean(x, axis=0), reps=reps)
    return np.percentile(means, 5, axis=0), np.percentile(means, 95, axis=0)


def interval_score(
    actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float
) -> np.ndarray:
    """Winkler's interval score of each band at ``level``: width plus 2/alpha times any miss."""
    # imported here: scoringrules compiles its numba kernels on import (about 2 s), which
    # the backtest's and the run's worker processes, which score nothing, need not pay
    import scoringrules  # noqa: PLC0415

    return np.asarray(
        scoringrules.interval_score(
            np.asarray(actual, dtype=np.float64),
            np.asarray(lower, dtype=np.float64),
            np.asarray(upper, dtype=np.float64),
            1.0 - level,
        ),
        dtype=np.float64,
    )


@dataclass
class Banded:
    """A model's bands at every horizon: ``(months, H)`` log offsets per level and side."""

    months: np.ndarray  # integer month counts, increasing
    lower: dict[float, np.ndarray] = field(default_factory=dict)
    upper: dict[float, np.ndarray] = field(default_factory=dict)


def band_every_horizon(
    errors_by_h: dict[int, tuple[np.ndarray, np.ndarray]],
    query_index: np.ndarray,
    history_by_h: dict[int, np.ndarray | None] | None = None,
    make_calibrator: Callable[[], Calibrator] = default_calibrator,
    warm_up: int = WARM_UP,
    *,
    monotone: bool = True,
) -> Banded:
    """Bands of one model at months ``query_index`` and horizons 1 … H, monotone in h.

    ``errors_by_h[h]`` holds the forecast months and log errors at horizon h;
    ``history_by_h[h]`` the stand-in errors (none if missing). ``monotone=False`` leaves
    each horizon's bands as its calibrator made them (``benchmarks/calibration.py``).
    """
    horizons = sorted(errors_by_h)
    if horizons != list(range(1, len(horizons) + 1)):
        raise ValueError(f"horizons must be 1 … H, got {horizons}")
    query = np.asarray(query_index, dtype=np.int64)
    banded = Banded(query)
    columns = {
        h: online_offsets(
            made,
            h,
            errors,
            query,
            history=(history_by_h or {}).get(h),
            calibrator=make_calibrator(),
            warm_up=warm_up,
        )
        for h, (made, errors) in errors_by_h.items()
    }
    for level in LEVELS:
        banded.lower[level] = np.column_stack([columns[h].lower[level] for h in horizons])
        banded.upper[level] = np.column_stack([columns[h].upper[level] for h in horizons])
    if monotone:
        nest_and_sort(banded.lower, banded.upper)
    return banded
