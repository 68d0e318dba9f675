from __future__ import annotations

import logging
import random

import numpy as np
import pandas as pd
import pytest

from tasks.data.windows import Windows, fit_scaler, make_windows, split_chronologically
from tasks.models.registry import (
    KERAS_BUILDERS,
    Network,
    drift_predict,
    fit_drift,
    forward_pass,
    model_spec,
    naive_predict,
)
from tasks.models.train import fit_model
from tests.conftest import synthetic_prices


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "n_params"),
    [("simple_rnn", 1633), ("gru", 3905), ("lstm", 4897), ("conv1d_lstm", 8993)],
)
def test_parameter_counts_match_the_lesson(name: str, n_params: int) -> None:
    assert KERAS_BUILDERS[name](12, 0).count_params() == n_params


@pytest.mark.unit
def test_conv_layer_is_causal() -> None:
    network = KERAS_BUILDERS["conv1d_lstm"](12, 0)
    conv = network.get_layer("causal_conv")
    x = np.random.default_rng(0).normal(size=(1, 12, 1)).astype("float32")
    changed = x.copy()
    changed[0, 7:, 0] += 5.0  # change the future from step 7 on
    before, after = np.asarray(conv(x)), np.asarray(conv(changed))
    np.testing.assert_array_equal(before[0, :7], after[0, :7])
    assert not np.allclose(before[0, 7:], after[0, 7:])


@pytest.mark.unit
def test_baselines() -> None:
    X = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 8.0]])
    np.testing.assert_array_equal(naive_predict(X), [3.0, 8.0])
    np.testing.assert_allclose(drift_predict(X, np.log(1.5)), [4.5, 12.0])


def _pipeline_predictions(close: np.ndarray, months: pd.DatetimeIndex, name: str) -> np.ndarray:
    train, test = split_chronologically(make_windows(close, months, 12), 0.2)
    scaler = fit_scaler("window", train)
    model = fit_model(name, train, scaler, epochs=2, batch_size=16, seed=7)
    return model.predict(test.X)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["naive", "drift", "lstm", "conv1d_lstm"])
def test_future_values_do_not_leak_into_earlier_predictions(name: str) -> None:
    n = 120
    close = 100 * np.exp(np.cumsum(np.random.default_rng(5).normal(0.005, 0.04, n)))
    months = pd.date_range("2000-01-01", periods=n, freq="MS")
    # samples: 108, train 86 → test targets are months 98 … 119; take t = month 110
    t = 110
    changed = close.copy()
    changed[t + 1 :] *= np.linspace(1.5, 3.0, n - t - 1)
    before = _pipeline_predictions(close, months, name)
    after = _pipeline_predictions(changed, months, name)
    first_target = 12 + 86
    upto = t - first_target + 1  # predictions for targets ≤ t
    np.testing.assert_allclose(before[:upto], after[:upto], rtol=1e-6)
    assert not np.allclose(before[upto + 1 :], after[upto + 1 :])


@pytest.mark.unit
def test_drift_is_mean_train_log_return() -> None:
    close = np.array([100.0 * 1.01**i for i in range(40)])
    months = pd.date_range("2000-01-01", periods=40, freq="MS")
    train, _ = split_chronologically(make_windows(close, months, 12), 0.2)
    assert fit_drift(train) == pytest.approx(np.log(1.01))


@pytest.mark.unit
def test_unknown_model_is_rejected() -> None:
    close = np.linspace(100, 200, 40)
    months = pd.date_range("2000-01-01", periods=40, freq="MS")
    train, _ = split_chronologically(make_windows(close, months, 12), 0.2)
    with pytest.raises(ValueError, match="unknown model"):
        fit_model("prophet", train, fit_scaler("window", train), epochs=1, batch_size=8, seed=0)


@pytest.mark.unit
def test_a_lambda_layer_is_refused_in_safe_mode(tmp_path) -> None:
    import keras

    from tasks.models.train import load_network

    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ValueError, match=r"(?i)safe"):
        load_network(path)


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(KERAS_BUILDERS))
def test_initial_weights_depend_on_the_seed_alone(name: str) -> None:
    """Another thread drawing from Python's ``random`` must not change a network's start."""
    random.seed(1)
    first = KERAS_BUILDERS[name](12, 5).get_weights()
    random.seed(2)
    again = KERAS_BUILDERS[name](12, 5).get_weights()
    other = KERAS_BUILDERS[name](12, 6).get_weights()
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    kernels = [
        (a, b) for a, b in zip(first, other, strict=True) if a.ndim > 1 and a.any()
    ]  # kernels
    assert kernels and not any(np.array_equal(a, b) for a, b in kernels)


@pytest.mark.unit
def test_a_variant_is_the_base_network_with_its_sizes() -> None:
    variant = model_spec("conv1d_lstm[filters=64,kernel_size=5]")
    network = variant.builder(12, 0)
    assert network.count_params() == 13_345
    conv = network.get_layer("causal_conv")
    assert (conv.filters, conv.kernel_size, conv.padding) == (64, (5,), "causal")
    assert model_spec("lstm[units=32]") is model_spec("lstm")  # the defaults: the plain model
    assert model_spec("gru[units=8,dense_units=4]").builder(12, 0).count_params() == (
        3 * (8 + 8 * 8 + 2 * 8) + (8 * 4 + 4) + (4 + 1)
    )


def _windows(n: int, seed: int) -> Windows:
    prices = synthetic_prices(n, seed)
    return make_windows(prices["close"].to_numpy(), pd.DatetimeIndex(prices["date"]), 12)


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(KERAS_BUILDERS))
def test_a_network_predicts_what_its_keras_model_computes(name: str) -> None:
    """``Network.predict`` (its architecture's shared trace) matches a direct Keras call.

    Another network of the architecture predicts first (2 windows), so the trace's template
    is not this model. Then batches of three sizes: the first retraces with a relaxed batch
    size, the other two reuse that trace.
    """
    windows = _windows(80, seed=3)
    scaler = fit_scaler("window", windows)
    Network(KERAS_BUILDERS[name](12, 99), scaler, 99, name).predict(windows.X[:2])
    model = KERAS_BUILDERS[name](12, 4)
    network = Network(model, scaler, 4, name)
    for n in (1, 9, len(windows)):
        X = windows.X[:n]
        direct = np.asarray(model(scaler.transform_X(X), training=False)).reshape(-1)
        np.testing.assert_allclose(
            network.predict(X), scaler.inverse_y(direct, X), rtol=1e-6, atol=0
        )


@pytest.mark.unit
def test_networks_of_one_architecture_share_one_trace_and_warn_of_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seven networks, three batch sizes: two traces in all, and no retracing warning."""
    windows = _windows(40, seed=5)
    scaler = fit_scaler("window", windows)
    architecture = "simple_rnn[units=5]"  # a name no other test predicts with
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for seed in range(7):  # TensorFlow warns from the 5th trace of the same step code
            model = KERAS_BUILDERS["simple_rnn"](12, seed, units=5)
            network = Network(model, scaler, seed, architecture)
            for n in (len(windows), 1, 3):
                network.predict(windows.X[:n])
    assert forward_pass(architecture, model).experimental_get_tracing_count() == 2
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
