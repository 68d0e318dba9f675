"""Model registry: each model name maps to a builder (two baselines, four Keras networks)."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from tasks.windows import Windows

KerasBuilder = Callable[[int], keras.Model]


def _head(inputs: keras.KerasTensor, body: keras.KerasTensor, name: str) -> keras.Model:
    hidden = keras.layers.Dense(16, activation="relu", name="dense_16")(body)
    output = keras.layers.Dense(1, name="output")(hidden)
    return keras.Model(inputs, output, name=name)


def build_simple_rnn(window: int) -> keras.Model:
    """SimpleRNN(32) → Dense(16, relu) → Dense(1) on ``(window, 1)`` inputs."""
    inputs = keras.Input((window, 1))
    return _head(inputs, keras.layers.SimpleRNN(32)(inputs), "simple_rnn")


def build_gru(window: int) -> keras.Model:
    """GRU(32) → Dense(16, relu) → Dense(1) on ``(window, 1)`` inputs."""
    inputs = keras.Input((window, 1))
    return _head(inputs, keras.layers.GRU(32)(inputs), "gru")


def build_lstm(window: int) -> keras.Model:
    """LSTM(32) → Dense(16, relu) → Dense(1) on ``(window, 1)`` inputs."""
    inputs = keras.Input((window, 1))
    return _head(inputs, keras.layers.LSTM(32)(inputs), "lstm")


def build_conv1d_lstm(window: int) -> keras.Model:
    """Causal Conv1D(32, 3, relu) → LSTM(32) → Dense(16, relu) → Dense(1)."""
    inputs = keras.Input((window, 1))
    conv = keras.layers.Conv1D(32, 3, padding="causal", activation="relu", name="causal_conv")(
        inputs
    )
    return _head(inputs, keras.layers.LSTM(32)(conv), "conv1d_lstm")


KERAS_BUILDERS: dict[str, KerasBuilder] = {
    "simple_rnn": build_simple_rnn,
    "gru": build_gru,
    "lstm": build_lstm,
    "conv1d_lstm": build_conv1d_lstm,
}


def naive_predict(X: np.ndarray) -> np.ndarray:
    """Last-value forecast: each window's final close."""
    return np.asarray(X, dtype=np.float64)[:, -1].copy()


def fit_drift(train: Windows) -> float:
    """Mean monthly log return over the training targets."""
    return float(np.mean(np.log(train.y / train.last)))


def drift_predict(X: np.ndarray, mean_log_return: float) -> np.ndarray:
    """Last value times ``exp(mean train monthly log return)``."""
    return naive_predict(X) * np.exp(mean_log_return)
