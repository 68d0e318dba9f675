from __future__ import annotations

import math

import numpy as np
import pytest

from tasks.evaluation.calibrate import conformal_quantiles, interval_score, online_bands

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("n", "a", "expected"),
    [
        (19, 0.05, (1.0, 19.0)),  # ranks floor(20 * .05) = 1 and ceil(20 * .95) = 19
        (39, 0.025, (1.0, 39.0)),
        (99, 0.10, (10.0, 90.0)),  # floor(100 * .1) = 10, ceil(100 * .9) = 90
    ],
)
def test_conformal_quantiles_are_the_corrected_order_statistics(n, a, expected) -> None:
    errors = np.arange(1.0, n + 1)[::-1]  # order does not matter
    assert conformal_quantiles(errors, a, a, a) == expected


@pytest.mark.parametrize(
    ("a", "expected"),
    [
        (0.05, (0.5, 9.5)),  # (n + 1) a = 0.5: half a rank past each extreme, slope 1
        (0.0, (0.0, 10.0)),  # a whole rank past
        (-0.2, (-2.0, 12.0)),  # a run of misses drove the level below zero: wider still
    ],
)
def test_a_level_beyond_the_sample_continues_at_the_tails_slope(a, expected) -> None:
    errors = np.arange(1.0, 10.0)  # n = 9, evenly spaced: the tail's slope is 1 per rank
    assert conformal_quantiles(errors, a, a, 0.05) == pytest.approx(expected)
    capped = conformal_quantiles(errors, a, a, 0.05, extrapolate=False)
    assert capped == (1.0, 9.0)  # the earlier rule: the extremes


def test_the_slope_is_the_tails_own() -> None:
    """Only the side's tail (extreme to nominal rank) sets how fast it widens."""
    errors = np.concatenate([[-1.0, -0.5], np.linspace(0.0, 1.0, 37), [3.0]])  # n = 40
    # nominal 0.05: rank ceil(41 * 0.05) = 3; lower slope (0.0 - -1.0) / 2, upper (3 - 0.972…) / 2
    low, high = conformal_quantiles(errors, 0.0, 0.0, 0.05)
    assert low == pytest.approx(-1.0 - 0.5)
    assert high == pytest.approx(3.0 + (3.0 - errors[-3]) / 2)


def test_no_errors_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one past error"):
        conformal_quantiles(np.array([]), 0.1, 0.1, 0.1)


def test_months_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        online_bands(np.array([3, 2]), 1, np.zeros(2), 5)


@pytest.mark.parametrize("horizon", [1, 3, 12])
def test_no_band_before_the_warm_up_and_none_from_unarrived_errors(horizon: int) -> None:
    rng = np.random.default_rng(horizon)
    made = np.arange(200)
    errors = rng.normal(0, 0.05, 200)
    bands = online_bands(made, horizon, errors, 199 + horizon, warm_up=24)
    first = 24 + horizon - 1  # forecast k sees errors[: k - h + 1]
    assert np.isnan(bands.lower[0.95][:first]).all()
    assert not np.isnan(bands.lower[0.95][first:]).any()
    # tampering with every error not yet arrived at month t leaves t's band unchanged
    for t in (first, 80, 150):
        tampered = errors.copy()
        tampered[t - horizon + 1 :] *= 50
        again = online_bands(made, horizon, tampered, 199 + horizon, warm_up=24)
        for level in (0.80, 0.95):
            np.testing.assert_array_equal(again.lower[level][: t + 1], bands.lower[level][: t + 1])
            np.testing.assert_array_equal(again.upper[level][: t + 1], bands.upper[level][: t + 1])
        assert not np.array_equal(again.upper[0.95], bands.upper[0.95])


def test_a_fall_deeper_than_every_past_error_is_covered_again_after_the_lag() -> None:
    """Each month's error beyond all before it: extrapolated bands catch up, capped ones never."""
    rng = np.random.default_rng(11)
    n, horizon = 600, 6
    errors = rng.normal(0, 0.05, n)
    errors[400:460] = -0.15 - 0.01 * np.arange(60)  # a fall that deepens every month
    made = np.arange(n)
    wide = online_bands(made, horizon, errors, n + horizon)
    capped = online_bands(made, horizon, errors, n + horizon, extrapolate=False)
    late = slice(420, 460)  # the fall's misses have been arriving for 14 months
    _, below_capped = coverage_of(capped, errors, 0.95, late)
    _, below_wide = coverage_of(wide, errors, 0.95, late)
    assert below_capped == 1.0  # the smallest past error is always the previous month's
    assert below_wide == 0.0


def coverage_of(bands, errors, level, rows) -> tuple[float, float]:
    """Share inside the band and share below it, over ``rows``."""
    low, high = bands.lower[level][rows], bands.upper[level][rows]
    e = errors[rows]
    return float(np.mean((e >= low) & (e <= high))), float(np.mean(e < low))


def test_adaptation_holds_coverage_through_a_regime_change() -> None:
    """Volatility triples halfway: static quantiles under-cover, the adapted ones do not."""
    rng = np.random.default_rng(7)
    n = 3000
    scale = np.where(np.arange(n) < n // 2, 0.03, 0.09)
    errors = rng.normal(0, 1, n) * scale
    made = np.arange(n)
    adapted = online_bands(made, 1, errors, n, gamma=0.01)
    static = online_bands(made, 1, errors, n, gamma=0.0)
    after = n // 2
    inside_adapted, below_adapted = coverage_of(adapted, errors, 0.95, slice(after, None))
    inside_static, _ = coverage_of(static, errors, 0.95, slice(after, None))
    assert inside_static < 0.90  # the old regime's quantiles lag
    assert 0.93 <= inside_adapted <= 0.97
    assert below_adapted <= 0.035
    inside_80, _ = coverage_of(adapted, errors, 0.80, slice(100, None))
    assert 0.77 <= inside_80 <= 0.83


def test_the_live_band_is_the_band_of_a_forecast_made_after_the_last_month() -> None:
    rng = np.random.default_rng(3)
    errors = rng.normal(0, 0.04, 120)
    made = np.arange(120)
    full = online_bands(np.append(made, 121), 2, np.append(errors, 0.0), 123)
    short = online_bands(made, 2, errors, 121)
    assert short.final_lower[0.95] == full.lower[0.95][-1]
    assert short.final_upper[0.80] == full.upper[0.80][-1]
    none = online_bands(made[:10], 2, errors[:10], 11)
    assert math.isnan(none.final_upper[0.95])


def test_interval_score_is_width_plus_the_scaled_miss() -> None:
    scores = interval_score(
        np.array([5.0, 0.0, 13.0]), np.array([2.0, 2.0, 2.0]), np.array([8.0, 8.0, 8.0]), 0.8
    )
    np.testing.assert_allclose(scores, [6.0, 6.0 + 10 * 2.0, 6.0 + 10 * 5.0])
