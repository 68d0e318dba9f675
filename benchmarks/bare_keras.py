"""The baseline for the speed benchmark: the four Keras models, trained as the pipeline trains them.

No Prefect, no DuckDB, no validation: numpy, pandas and Keras only. Prints one JSON line.
By default each model is compiled as plain Keras does (one compiled call per batch);
``--one-call-per-epoch`` compiles it as the pipeline does (``steps_per_execution`` = batches
per epoch), so the two can be compared like for like.
"""

import argparse
import json
import math
import os
import time

started = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("csv")
parser.add_argument("--one-call-per-epoch", action="store_true")
args = parser.parse_args()
close = pd.read_csv(args.csv)["close"].to_numpy(dtype=np.float64)
X = np.lib.stride_tricks.sliding_window_view(close, 12)[:-1]
y = close[12:]
cut = int(len(y) * 0.8)
last = X[:, -1]
ratios, targets = np.log(X / last[:, None]), np.log(y / last)
x_scale = ratios[:cut, :-1].std()
y_mean, y_scale = targets[:cut].mean(), targets[:cut].std()
inputs = (ratios / x_scale)[..., None].astype("float32")
scaled = ((targets - y_mean) / y_scale).astype("float32")
steps = math.ceil(cut / 32) if args.one_call_per_epoch else 1
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
    model.compile(optimizer="adam", loss="mse", steps_per_execution=steps)
    model.fit(inputs[:cut], scaled[:cut], epochs=60, batch_size=32, verbose=0)
    pred = last[cut:] * np.exp(np.asarray(model(inputs[cut:])).ravel() * y_scale + y_mean)
    fits[name] = time.perf_counter() - t0
    rmse[name] = float(np.sqrt(np.mean((y[cut:] - pred) ** 2)))
print(
    json.dumps(
        {
            "steps_per_execution": steps,
            "imports_and_data": imported - started,
            "fit_seconds": fits,
            "rmse": rmse,
            "total": time.perf_counter() - started,
        }
    )
)
