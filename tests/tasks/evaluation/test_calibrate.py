from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.evaluation.calibrate import (
    LEVELS,
    BoundedACI,
    Bounds,
    Calibrator,
    Choice,
    Conformal,
    ErrorPool,
    PastMoves,
    QuantileTracker,
    band_every_horizon,
    coverage_intervals,
    interval_score,
    nest_and_sort,
    online_offsets,
    within_past_moves,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("n", "a", "expected"),
    [
        (19, 0.05, (1.0, 19.0)),  # ranks floor(20 * .05) = 1 and ceil(20 * .95) = 19
        (39, 0.025, (1.0, 39.0)),
        (99, 0.10, (10.0, 90.0)),  # floor(100 * .1) = 10, ceil(100 * .9) = 90
        (9, 0.05, (1.0, 9.0)),  # (n + 1) a = 0.5: a level beyond the sample stays at the extreme
        (9, -0.3, (1.0, 9.0)),
    ],
)
def test_conformal_bounds_are_the_corrected_order_statistics_inside_the_sample(
    n, a, expected
) -> None:
    pool = ErrorPool(np.arange(1.0, n + 1)[::-1])  # order does not matter
    assert pool.conformal(a, a) == expected


def test_bounded_aci_keeps_its_levels_inside_the_sample() -> None:
    """A long run of misses drives plain ACI's level below zero; bounded, it stops at 1/(n+1)."""
    pool = ErrorPool(np.linspace(-1.0, 1.0, 99))
    aci = BoundedACI(0.05)
    for _ in range(200):
        band = aci.bounds(pool)
        aci.update(-5.0, band, pool)  # every actual far below every band
    band = aci.bounds(pool)
    assert band[0.95][0] == pool.sorted[0]  # the smallest error, never past it
    assert aci.rates[0.95][0] == pytest.approx(1 / 100)


def test_a_quantile_tracker_moves_out_on_misses_and_stays_within_past_errors() -> None:
    pool = ErrorPool(np.linspace(-0.1, 0.1, 201))
    tracker = QuantileTracker(0.5)
    start = tracker.bounds(pool)[0.95]
    for _ in range(5):
        tracker.update(0.5, tracker.bounds(pool), pool)  # above the band every time
    moved = tracker.bounds(pool)[0.95]
    assert moved[1] > start[1]  # the upper bound went out
    assert moved[0] > start[0]  # the lower one came in (no misses below)
    for _ in range(500):
        tracker.update(0.5, tracker.bounds(pool), pool)
    assert tracker.bounds(pool)[0.95][1] == pool.sorted[-1]  # clipped at the largest error


class Fixed(Calibrator):
    """A band that never moves, for testing the choice."""

    def __init__(self, low: float, high: float) -> None:
        self.band = (low, high)

    def bounds(self, pool: ErrorPool) -> Bounds:
        return dict.fromkeys(LEVELS, self.band)


def test_the_choice_takes_each_side_from_its_best_candidate() -> None:
    """One candidate is close below and far above, the other the reverse: take the close sides."""
    rng = np.random.default_rng(5)
    errors = rng.normal(0, 0.05, 400)
    choice = Choice([Fixed(-0.12, 0.6), Fixed(-0.6, 0.12)])
    months = np.arange(400)
    offsets = online_offsets(months, 1, errors, months, calibrator=choice, warm_up=1)
    assert offsets.lower[0.95][-1] == -0.12 and offsets.upper[0.95][-1] == 0.12
    assert np.isnan(offsets.lower[0.95][0])  # month 0: no error has arrived
    assert offsets.upper[0.95][1] == 0.6  # month 1: nothing learnt yet, the first candidate
    with pytest.raises(TypeError, match="only from bounds it issued"):
        choice.update(0.0, {0.95: (-1.0, 1.0)}, ErrorPool(errors))


def test_months_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        online_offsets(np.array([3, 2]), 1, np.zeros(2), np.array([5]))


@pytest.mark.parametrize("horizon", [1, 3, 12])
def test_no_band_before_the_warm_up_and_none_from_unarrived_errors(horizon: int) -> None:
    rng = np.random.default_rng(horizon)
    made = np.arange(200)
    errors = rng.normal(0, 0.05, 200)
    offsets = online_offsets(made, horizon, errors, made, warm_up=24)
    first = 24 + horizon - 1  # month k sees errors[: k - h + 1]
    assert np.isnan(offsets.lower[0.95][:first]).all()
    assert not np.isnan(offsets.lower[0.95][first:]).any()
    # tampering with every error not yet arrived at month t leaves t's band unchanged
    for t in (first, 80, 150):
        tampered = errors.copy()
        tampered[t - horizon + 1 :] *= 50
        again = online_offsets(made, horizon, tampered, made, warm_up=24)
        for level in LEVELS:
            np.testing.assert_array_equal(
                again.lower[level][: t + 1], offsets.lower[level][: t + 1]
            )
            np.testing.assert_array_equal(
                again.upper[level][: t + 1], offsets.upper[level][: t + 1]
            )
        assert not np.array_equal(again.upper[0.95], offsets.upper[0.95])


def test_a_stand_in_history_bands_from_the_first_month() -> None:
    rng = np.random.default_rng(2)
    errors = rng.normal(0, 0.05, 50)
    offsets = online_offsets(
        np.arange(50), 3, errors, np.arange(50), history=rng.normal(0, 0.05, 100)
    )
    assert np.isfinite(offsets.lower[0.80]).all()


def coverage_of(offsets, errors, level, rows) -> tuple[float, float]:
    """Share inside the band and share below it, over ``rows``."""
    low, high = offsets.lower[level][rows], offsets.upper[level][rows]
    e = errors[rows]
    return float(np.mean((e >= low) & (e <= high))), float(np.mean(e < low))


def test_adaptation_holds_coverage_through_a_regime_change() -> None:
    """Volatility triples halfway: static quantiles under-cover, the adapted choice does not."""
    rng = np.random.default_rng(7)
    n = 3000
    scale = np.where(np.arange(n) < n // 2, 0.03, 0.09)
    errors = rng.normal(0, 1, n) * scale
    made = np.arange(n)
    adapted = online_offsets(made, 1, errors, made)  # the default calibrator
    static = online_offsets(made, 1, errors, made, calibrator=Conformal())
    after = slice(n // 2, None)
    inside_adapted, below_adapted = coverage_of(adapted, errors, 0.95, after)
    inside_static, _ = coverage_of(static, errors, 0.95, after)
    assert inside_static < 0.90  # the old regime's quantiles lag
    assert 0.93 <= inside_adapted <= 0.97
    assert below_adapted <= 0.035
    inside_80, _ = coverage_of(adapted, errors, 0.80, slice(100, None))
    assert 0.77 <= inside_80 <= 0.83


def test_the_live_band_is_the_band_at_the_last_month() -> None:
    rng = np.random.default_rng(3)
    errors = rng.normal(0, 0.04, 120)
    made = np.arange(120)
    every = online_offsets(made, 2, errors, np.append(made, 121))
    only_live = online_offsets(made, 2, errors, np.array([121]))
    assert only_live.lower[0.95][0] == every.lower[0.95][-1]
    assert only_live.upper[0.80][0] == every.upper[0.80][-1]
    none = online_offsets(made[:10], 2, errors[:10], np.array([11]))
    assert np.isnan(none.upper[0.95][0])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    horizons=st.integers(2, 12),
    scale=st.floats(0.005, 0.3),
    drift=st.floats(-0.05, 0.05),
)
def test_every_path_widens_with_the_horizon_and_stays_nested(seed, horizons, scale, drift) -> None:
    """Property: whatever the errors, each side's distance from the point grows with h."""
    rng = np.random.default_rng(seed)
    n = 90
    made = np.arange(n)
    errors_by_h = {
        h: (made, rng.standard_t(3, n) * scale * rng.uniform(0.3, 2.0) + drift * h)
        for h in range(1, horizons + 1)
    }
    banded = band_every_horizon(errors_by_h, np.append(made, n), warm_up=12)
    for level in LEVELS:
        for sign, offsets in ((-1, banded.lower[level]), (1, banded.upper[level])):
            distance = sign * offsets
            steps = np.diff(distance, axis=1)
            assert np.all(np.isnan(steps) | (steps >= -1e-12))
    wide, narrow = banded.lower[0.95], banded.lower[0.80]
    ok = ~np.isnan(wide)
    assert np.all(wide[ok] <= narrow[ok] + 1e-12)
    assert np.all(banded.upper[0.95][ok] >= banded.upper[0.80][ok] - 1e-12)


def test_nest_and_sort_pools_adjacent_violators() -> None:
    lower = {0.80: np.array([[-0.2, -0.1, -0.3]]), 0.95: np.array([[-0.3, -0.25, -0.4]])}
    upper = {0.80: np.array([[0.1, 0.3, 0.2]]), 0.95: np.array([[0.2, 0.4, 0.3]])}
    nest_and_sort(lower, upper)
    np.testing.assert_allclose(upper[0.80], [[0.1, 0.25, 0.25]])
    np.testing.assert_allclose(-lower[0.80], [[0.15, 0.15, 0.3]])


def test_no_band_goes_beyond_the_index_own_moves() -> None:
    closes = np.array([100.0, 50.0, 100.0, 200.0, 210.0])  # worst 1-month -50 %, best +100 %
    moves = PastMoves(np.arange(5), closes)
    close, worst, best = moves.at(np.array([4]), 2)
    assert close[0] == 210.0
    np.testing.assert_allclose(worst[0], [np.log(0.5), np.log(1.0)])  # 2-month: 100 → 100
    np.testing.assert_allclose(best[0], [np.log(2.0), np.log(4.0)])
    point = np.array([[220.0, 230.0]])
    lower = {0.95: np.array([[-1.0, -1.0]])}
    upper = {0.95: np.array([[1.5, 2.0]])}
    within_past_moves(lower, upper, np.log(point / close[0]), worst, best)
    low_price, high_price = point * np.exp(lower[0.95]), point * np.exp(upper[0.95])
    assert np.all(low_price >= 210.0 * np.exp(worst) - 1e-9)
    assert np.all(high_price <= 210.0 * np.exp(best) + 1e-9)
    assert np.all(np.diff(-lower[0.95]) >= 0) and np.all(np.diff(upper[0.95]) >= 0)


def test_coverage_intervals_contain_the_share_and_widen_with_dependence() -> None:
    rng = np.random.default_rng(0)
    hits = rng.uniform(size=600) < 0.9
    low, high = coverage_intervals(hits, 1)
    assert low[0] < hits.mean() < high[0]
    clumped = np.repeat(hits[:50], 12)  # the same share, in runs of 12
    wide_low, wide_high = coverage_intervals(clumped, 12)
    assert wide_high[0] - wide_low[0] > high[0] - low[0]
    again = coverage_intervals(hits, 1)  # a fixed seed: reproducible
    np.testing.assert_array_equal(again[0], low)


def test_interval_score_is_width_plus_the_scaled_miss() -> None:
    scores = interval_score(
        np.array([5.0, 0.0, 13.0]), np.array([2.0, 2.0, 2.0]), np.array([8.0, 8.0, 8.0]), 0.8
    )
    np.testing.assert_allclose(scores, [6.0, 6.0 + 10 * 2.0, 6.0 + 10 * 5.0])


def test_the_pool_spread_is_the_recent_windows_standard_deviation() -> None:
    rng = np.random.default_rng(9)
    pool = ErrorPool(rng.normal(0, 0.1, 30))
    for e in rng.normal(0, 0.3, 100):
        pool.add(float(e))
        recent = np.asarray(pool.arrived[-60:])
        assert pool.spread() == pytest.approx(np.std(recent, ddof=1), rel=1e-9)
    assert ErrorPool(np.array([0.1])).spread() == 0.0
