from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.data.windows import (
    MinMaxScaler,
    WindowScaler,
    fit_scaler,
    make_windows,
    min_rows_needed,
    split_chronologically,
)

pytestmark = pytest.mark.unit


def series(n: int) -> tuple[np.ndarray, pd.DatetimeIndex]:
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(1).normal(0.005, 0.04, n)))
    return close, pd.date_range("2000-01-01", periods=n, freq="MS")


def test_sample_i_is_window_and_next_value() -> None:
    close = np.arange(1.0, 21.0)
    windows = make_windows(close, pd.date_range("2000-01-01", periods=20, freq="MS"), 12)
    assert windows.X.shape == (8, 12)
    np.testing.assert_array_equal(windows.X[0], np.arange(1.0, 13.0))
    assert windows.y[0] == 13.0
    np.testing.assert_array_equal(windows.X[-1], np.arange(8.0, 20.0))
    assert windows.y[-1] == 20.0
    assert windows.months[0] == pd.Timestamp("2001-01-01")


@pytest.mark.parametrize(
    ("n_rows", "window", "fraction", "expected"),
    [(917, 12, 0.2, (724, 181)), (100, 12, 0.2, (70, 18)), (40, 6, 0.5, (17, 17))],
)
def test_split_sizes_follow_int_n_times_point_8(n_rows, window, fraction, expected) -> None:
    close, months = series(n_rows)
    train, test = split_chronologically(make_windows(close, months, window), fraction)
    assert (len(train), len(test)) == expected
    assert train.months[-1] < test.months[0]


def test_too_short_for_windows_raises() -> None:
    close, months = series(12)
    with pytest.raises(ValueError, match="more than 12"):
        make_windows(close, months, 12)


def test_min_rows_needed_is_tight() -> None:
    rows = min_rows_needed(12, 0.2)
    close, months = series(rows)
    split_chronologically(make_windows(close, months, 12), 0.2)
    close, months = series(rows - 1)
    with pytest.raises(ValueError, match="too few"):
        split_chronologically(make_windows(close, months, 12), 0.2)


@pytest.mark.parametrize("horizon", [1, 2, 12, 24])
def test_min_rows_leave_two_errors_at_the_last_horizon(horizon) -> None:
    rows = min_rows_needed(12, 0.2, horizon)
    close, months = series(rows)
    _, test = split_chronologically(make_windows(close, months, 12), 0.2)
    assert len(test) - horizon + 1 >= 2  # h-step errors at h = horizon
    close, months = series(rows - 1)
    try:
        _, test = split_chronologically(make_windows(close, months, 12), 0.2)
    except ValueError:  # too few for the split itself
        return
    assert len(test) - horizon + 1 < 2


@pytest.mark.parametrize("kind", ["window", "minmax"])
def test_scalers_round_trip(kind: str) -> None:
    close, months = series(200)
    train, test = split_chronologically(make_windows(close, months, 12), 0.2)
    scaler = fit_scaler(kind, train)
    for part in (train, test):
        scaled = scaler.transform_y(part.y, part.X)
        np.testing.assert_allclose(scaler.inverse_y(scaled, part.X), part.y, rtol=1e-5)
        assert scaler.transform_X(part.X).shape == (len(part), 12, 1)


def test_window_scaling_is_level_free_and_standardised_on_train() -> None:
    close, months = series(200)
    train, _ = split_chronologically(make_windows(close, months, 12), 0.2)
    scaler = WindowScaler.fit(train)
    scaled_y = scaler.transform_y(train.y, train.X)
    assert abs(float(scaled_y.mean())) < 1e-5
    assert float(scaled_y.std()) == pytest.approx(1.0, rel=1e-4)
    # the same shape at ten times the price scales to the same inputs
    np.testing.assert_allclose(scaler.transform_X(train.X * 10), scaler.transform_X(train.X))


def test_minmax_uses_training_range_only() -> None:
    close, months = series(200)
    train, test = split_chronologically(make_windows(close, months, 12), 0.2)
    scaler = MinMaxScaler.fit(train)
    assert scaler.high == pytest.approx(max(train.X.max(), train.y.max()))
    assert scaler.low == pytest.approx(min(train.X.min(), train.y.min()))
    assert scaler.high < test.y.max()  # this series trends up: test prices exceed the range


def test_unknown_scaler() -> None:
    close, months = series(60)
    train, _ = split_chronologically(make_windows(close, months, 12), 0.2)
    with pytest.raises(ValueError, match="unknown scaling"):
        fit_scaler("zscore", train)  # type: ignore[arg-type]
