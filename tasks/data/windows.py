"""Sliding windows over the monthly series, the chronological split, and the two scalers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

MIN_TRAIN_SAMPLES = 8
MIN_TEST_SAMPLES = 2


@dataclass(frozen=True)
class Windows:
    """Samples of a series: ``X[i]`` holds ``window`` closes, ``y[i]`` the next close."""

    X: np.ndarray  # (n, window) float64 closes
    y: np.ndarray  # (n,) float64 next-month closes
    months: pd.DatetimeIndex  # (n,) month of each target

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.y)

    @property
    def last(self) -> np.ndarray:
        """Last close of each window: the naive forecast of its target."""
        return self.X[:, -1]

    def part(self, start: int | None, stop: int | None) -> Windows:
        """Samples ``start:stop``, in order."""
        sl = slice(start, stop)
        return Windows(X=self.X[sl], y=self.y[sl], months=self.months[sl])


def make_windows(close: np.ndarray, months: pd.DatetimeIndex, window: int) -> Windows:
    """Slide a ``window``-month window over ``close``: sample i is close[i:i+w] → close[i+w]."""
    values = np.asarray(close, dtype=np.float64)
    if values.ndim != 1 or len(values) <= window:
        raise ValueError(f"need more than {window} values to make windows, got {len(values)}")
    X = np.lib.stride_tricks.sliding_window_view(values, window)[:-1].copy()
    return Windows(X=X, y=values[window:].copy(), months=pd.DatetimeIndex(months[window:]))


def split_index(n_samples: int, test_fraction: float) -> int:
    """Index of the first test sample: ``int(n_samples * (1 - test_fraction))``."""
    return int(n_samples * (1.0 - test_fraction))


def split_chronologically(windows: Windows, test_fraction: float) -> tuple[Windows, Windows]:
    """Cut samples into an earlier train part and a later test part, with no shuffling."""
    cut = split_index(len(windows), test_fraction)
    if cut < MIN_TRAIN_SAMPLES or len(windows) - cut < MIN_TEST_SAMPLES:
        raise ValueError(f"{len(windows)} samples leave too few for train/test at {cut}")
    return windows.part(0, cut), windows.part(cut, None)


def min_rows_needed(window: int, test_fraction: float, horizon: int = 1) -> int:
    """Fewest monthly rows that leave enough train and test samples for this window.

    A ``horizon`` of H needs H - 1 more test samples, so that the test split still holds
    ``MIN_TEST_SAMPLES`` H-step errors to size the H-month interval with.
    """
    min_test = MIN_TEST_SAMPLES + horizon - 1
    rows = window + MIN_TRAIN_SAMPLES + min_test
    while True:
        n = rows - window
        cut = split_index(n, test_fraction)
        if cut >= MIN_TRAIN_SAMPLES and n - cut >= min_test:
            return rows
        rows += 1


class Scaler(Protocol):
    """Maps raw windows/targets to model space and predictions back to prices."""

    def transform_X(self, X: np.ndarray) -> np.ndarray:
        """Scale raw windows ``(n, w)`` to model inputs ``(n, w, 1)``."""
        ...

    def transform_y(self, y: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Scale raw targets ``(n,)`` given their windows."""
        ...

    def inverse_y(self, y_scaled: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Turn scaled predictions ``(n,)`` back into prices, given their windows."""
        ...


@dataclass(frozen=True)
class WindowScaler:
    """Log ratio of each value to its window's last close, standardised with train statistics."""

    x_scale: float
    y_mean: float
    y_scale: float

    @classmethod
    def fit(cls, train: Windows) -> WindowScaler:
        """Learn the scales from training samples only."""
        ratios = np.log(train.X / train.last[:, None])
        targets = np.log(train.y / train.last)
        x_scale = float(ratios[:, :-1].std()) if ratios.shape[1] > 1 else 1.0
        return cls(
            x_scale=x_scale or 1.0,
            y_mean=float(targets.mean()),
            y_scale=float(targets.std()) or 1.0,
        )

    def transform_X(self, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return (np.log(X / X[:, -1:]) / self.x_scale)[..., None].astype(np.float32)

    def transform_y(self, y: np.ndarray, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return ((np.log(y / X[:, -1]) - self.y_mean) / self.y_scale).astype(np.float32)

    def inverse_y(self, y_scaled: np.ndarray, X: np.ndarray) -> np.ndarray:  # noqa: D102
        log_ratio = np.asarray(y_scaled, dtype=np.float64) * self.y_scale + self.y_mean
        return X[:, -1] * np.exp(log_ratio)


@dataclass(frozen=True)
class MinMaxScaler:
    """Global min-max scaling of every close to [0, 1] with the training range (the lesson's)."""

    low: float
    high: float

    @classmethod
    def fit(cls, train: Windows) -> MinMaxScaler:
        """Learn the range from training windows and targets only."""
        values = np.concatenate([train.X.ravel(), train.y])
        return cls(low=float(values.min()), high=float(values.max()))

    @property
    def _span(self) -> float:
        return (self.high - self.low) or 1.0

    def transform_X(self, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return ((X - self.low) / self._span)[..., None].astype(np.float32)

    def transform_y(self, y: np.ndarray, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return ((y - self.low) / self._span).astype(np.float32)

    def inverse_y(self, y_scaled: np.ndarray, X: np.ndarray) -> np.ndarray:  # noqa: D102
        return np.asarray(y_scaled, dtype=np.float64) * self._span + self.low


ScalingName = Literal["window", "minmax"]


def fit_scaler(kind: ScalingName, train: Windows) -> Scaler:
    """Fit the named scaler on training samples."""
    if kind == "window":
        return WindowScaler.fit(train)
    if kind == "minmax":
        return MinMaxScaler.fit(train)
    raise ValueError(f"unknown scaling {kind!r}")


@task(name="make_windows", cache_policy=NO_CACHE)
def make_windows_task(prices: pd.DataFrame, window: int) -> Windows:
    """Window the validated price frame."""
    windows = make_windows(prices["close"].to_numpy(), pd.DatetimeIndex(prices["month"]), window)
    get_run_logger().info("%d samples of %d months", len(windows), window)
    return windows


@task(name="split_chronologically", cache_policy=NO_CACHE)
def split_task(windows: Windows, test_fraction: float) -> tuple[Windows, Windows]:
    """Split samples into train and test, in time order."""
    train, test = split_chronologically(windows, test_fraction)
    get_run_logger().info(
        "%d train / %d test samples; test targets %s … %s",
        len(train),
        len(test),
        test.months[0].strftime("%Y-%m"),
        test.months[-1].strftime("%Y-%m"),
    )
    return train, test
