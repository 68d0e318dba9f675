from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from tasks.data.windows import fit_scaler, make_windows, split_chronologically
from tasks.models.registry import KERAS_BUILDERS
from tasks.models.train import fit_model, load_network


def _train_split():
    n = 90
    close = 100 * np.exp(np.cumsum(np.random.default_rng(3).normal(0.005, 0.04, n)))
    windows = make_windows(close, pd.date_range("2000-01-01", periods=n, freq="MS"), 12)
    return split_chronologically(windows, 0.2)  # 78 samples → 62 train: 4 batches of 16


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KERAS_BUILDERS))
def test_a_one_member_stacked_fit_trains_like_plain_keras(name: str, float64: None) -> None:
    """The monthly run's fit (stacked, G = 1, one call per epoch) matches a plain Keras fit."""
    train, test = _train_split()
    scaler = fit_scaler("window", train)
    model = fit_model(name, train, scaler, epochs=3, batch_size=16, seed=11)
    assert model.seeds == (11,)
    (member,) = model.forecaster.members

    keras.utils.set_random_seed(11)  # the batch order
    reference = KERAS_BUILDERS[name](12, 11)
    reference.compile(optimizer=keras.optimizers.Adam(), loss="mse")  # one step per call
    reference.fit(
        scaler.transform_X(train.X),
        scaler.transform_y(train.y, train.X),
        epochs=3,
        batch_size=16,
        shuffle=True,
        verbose=0,
    )
    for ours, theirs in zip(member.network.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    expected = np.asarray(reference(scaler.transform_X(test.X), training=False)).reshape(-1)
    np.testing.assert_allclose(model.predict(test.X), scaler.inverse_y(expected, test.X), rtol=1e-9)


@pytest.mark.slow
def test_each_member_is_saved_as_a_plain_keras_model(tmp_path) -> None:
    train, test = _train_split()
    scaler = fit_scaler("window", train)
    model = fit_model(
        "gru", train, scaler, epochs=1, batch_size=16, seed=3, seeds=2, artifact_dir=tmp_path
    )
    assert model.role == "evaluation" and model.trained_through == train.months[-1]
    assert sorted(model.artifacts) == [3, 4]
    X = scaler.transform_X(test.X)
    for member in model.forecaster.members:
        path, sha = model.artifacts[member.seed]
        assert path == tmp_path / f"gru-evaluation-seed{member.seed}.keras"
        loaded = load_network(path, sha)
        assert {type(layer).__module__.split(".")[0] for layer in loaded.layers} == {"keras"}
        assert loaded.count_params() == model.n_params == 3905
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(loaded(X)),
            keras.ops.convert_to_numpy(member.network(X)),
            rtol=1e-6,
        )
    # the ensemble's forecast is the mean of its members' price forecasts
    members = model.member_predictions(test.X)
    assert members.shape == (len(test), 2)
    assert not np.allclose(members[:, 0], members[:, 1])  # two seeds, two networks
    np.testing.assert_allclose(model.predict(test.X), members.mean(axis=1))
    path, sha = model.artifacts[3]
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ValueError, match="sha256"):
        load_network(path, sha)


@pytest.mark.unit
def test_an_unknown_role_is_refused() -> None:
    train, _ = _train_split()
    with pytest.raises(ValueError, match="unknown role 'final'"):
        fit_model(
            "naive",
            train,
            fit_scaler("window", train),
            epochs=1,
            batch_size=8,
            seed=0,
            role="final",
        )
