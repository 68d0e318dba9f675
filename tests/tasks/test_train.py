from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from tasks.models import KERAS_BUILDERS
from tasks.train import batches_per_epoch, continue_fit, fit_model
from tasks.windows import fit_scaler, make_windows, split_chronologically

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("n_samples", "batch_size", "expected"),
    [(724, 32, 23), (64, 32, 2), (65, 32, 3), (5, 32, 1), (0, 32, 1)],
)
def test_batches_per_epoch(n_samples: int, batch_size: int, expected: int) -> None:
    assert batches_per_epoch(n_samples, batch_size) == expected


def _train_split():
    n = 90
    close = 100 * np.exp(np.cumsum(np.random.default_rng(3).normal(0.005, 0.04, n)))
    windows = make_windows(close, pd.date_range("2000-01-01", periods=n, freq="MS"), 12)
    return split_chronologically(windows, 0.2)  # 78 samples → 62 train: 4 batches of 16


@pytest.mark.parametrize("name", ["gru", "conv1d_lstm"])
def test_one_call_per_epoch_trains_like_one_call_per_batch(name: str) -> None:
    train, test = _train_split()
    scaler = fit_scaler("window", train)
    model = fit_model(name, train, scaler, epochs=3, batch_size=16, seed=11)
    assert model.network is not None
    assert model.network.steps_per_execution == 4

    keras.utils.set_random_seed(11)
    reference = KERAS_BUILDERS[name](12)
    reference.compile(optimizer=keras.optimizers.Adam(), loss="mse")  # one step per call
    reference.fit(
        scaler.transform_X(train.X),
        scaler.transform_y(train.y, train.X),
        epochs=3,
        batch_size=16,
        shuffle=True,
        verbose=0,
    )
    for ours, theirs in zip(model.network.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    expected = np.asarray(reference(scaler.transform_X(test.X), training=False)).reshape(-1)
    np.testing.assert_allclose(model.predict(test.X), scaler.inverse_y(expected, test.X), rtol=1e-5)


def test_warm_start_of_a_baseline_is_refused() -> None:
    train, _ = _train_split()
    scaler = fit_scaler("window", train)
    naive = fit_model("naive", train, scaler, epochs=1, batch_size=16, seed=0)
    with pytest.raises(ValueError, match="naive has no network"):
        continue_fit(naive, train, scaler, epochs=1, batch_size=16)
