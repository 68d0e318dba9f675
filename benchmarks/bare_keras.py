"""The baseline for the speed benchmark: the four Keras models, trained as the pipeline does.

No Prefect, no DuckDB, no validation: numpy, pandas and Keras only. Prints one JSON line.
"""

import json
import os
import sys
import time

started = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd

close = pd.read_csv(sys.argv[1])["close"].to_numpy(dtype=np.float64)
X = np.lib.stride_tricks.sliding_window_view(close, 12)[:-1]
y = close[12:]
cut = int(len(y) * 0.8)
last = X[:, -1]
ratios, targets = np.log(X / last[:, None]), np.log(y / last)
x_scale = ratios[:cut, :-1].std()
y_mean, y_scale = targets[:cut].mean(), targets[:cut].std()
inputs = (ratios / x_scale)[..., None].astype("float32")
scaled = ((targets - y_mean) / y_scale).astype("float32")
imported = time.perf_counter()


def body(name, x):
    """The recurrent part of each model."""
    if name == "conv1d_lstm":
        x = keras.layers.Conv1D(32, 3, padding="causal", activation="relu")(x)
        return keras.layers.LSTM(32)(x)
    layer = {
        "simple_rnn": keras.layers.SimpleRNN,
        "gru": keras.layers.GRU,
        "lstm": keras.layers.LSTM,
    }[name]
    return layer(32)(x)


fits, rmse = {}, {}
for name in ("simple_rnn", "gru", "lstm", "conv1d_lstm"):
    t0 = time.perf_counter()
    keras.utils.set_random_seed(42)
    inp = keras.Input((12, 1))
    out = keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(body(name, inp)))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    model.fit(inputs[:cut], scaled[:cut], epochs=60, batch_size=32, verbose=0)
    pred = last[cut:] * np.exp(np.asarray(model(inputs[cut:])).ravel() * y_scale + y_mean)
    fits[name] = time.perf_counter() - t0
    rmse[name] = float(np.sqrt(np.mean((y[cut:] - pred) ** 2)))
print(
    json.dumps(
        {
            "imports_and_data": imported - started,
            "fit_seconds": fits,
            "rmse": rmse,
            "total": time.perf_counter() - started,
        }
    )
)
