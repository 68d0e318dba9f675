"""What was tried to push the Keras models below 120 RMSE, selected on train data only.

Every variant trains on the first 85 % of the training samples and is judged on the
chronological validation tail (the last 15 % of training samples); the test split is
scored only to report what each choice would have given. Writes
``benchmarks/results/tuning.json`` and ``tuning.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import describe, where_ran

from core.settings import KERAS_MODELS
from tasks.data.validate import parse_prices
from tasks.data.windows import Windows, WindowScaler, make_windows, split_chronologically
from tasks.models.registry import KERAS_BUILDERS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sp500_monthly.csv"
RESULTS = ROOT / "benchmarks" / "results"
VALIDATION_FRACTION = 0.15


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error in index points."""
    return float(np.sqrt(np.mean((actual - predicted) ** 2)))


def dense_only(window: int) -> keras.Model:
    """A Dense-only network on the same windows: Flatten → Dense(32) → Dense(16) → Dense(1)."""
    inputs = keras.Input((window, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(1)(x), name="dense_only")


def with_dropout(name: str, window: int, rate: float = 0.2) -> keras.Model:
    """The named network with dropout on the recurrent layer's inputs and before the head."""
    inputs = keras.Input((window, 1))
    x = inputs
    if name == "conv1d_lstm":
        x = keras.layers.Conv1D(32, 3, padding="causal", activation="relu")(x)
    layer = {"simple_rnn": keras.layers.SimpleRNN, "gru": keras.layers.GRU}.get(
        name, keras.layers.LSTM
    )
    x = layer(32, dropout=rate)(x)
    x = keras.layers.Dropout(rate)(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(1)(x), name=f"{name}_dropout")


def fit_predict(
    variant: str,
    name: str,
    fit: Windows,
    parts: dict[str, Windows],
    scaler: WindowScaler,
    seed: int,
) -> dict[str, np.ndarray]:
    """Train one variant on ``fit`` and return price predictions for every part."""
    keras.utils.set_random_seed(seed)
    window = fit.X.shape[1]
    network = {
        "dropout": lambda: with_dropout(name, window),
        "dense_only": lambda: dense_only(window),
    }.get(variant, lambda: KERAS_BUILDERS[name](window, seed))()
    optimizer = keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=60 * 20)
        if variant == "cosine_lr"
        else 1e-3
    )
    network.compile(optimizer=optimizer, loss="mse")
    val = parts["validation"]
    callbacks, epochs = [], 60
    if variant == "early_stopping":
        epochs = 200
        callbacks = [keras.callbacks.EarlyStopping(patience=15, restore_best_weights=True)]
    network.fit(
        scaler.transform_X(fit.X),
        scaler.transform_y(fit.y, fit.X),
        epochs=epochs,
        batch_size=32,
        verbose=0,
        callbacks=callbacks,
        validation_data=(scaler.transform_X(val.X), scaler.transform_y(val.y, val.X)),
    )
    return {
        part: scaler.inverse_y(np.asarray(network(scaler.transform_X(w.X))).ravel(), w.X)
        for part, w in parts.items()
    }


def main() -> None:
    """Run every variant for every model and seed; write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", default="42,43,44")
    args = parser.parse_args()
    prices = parse_prices(args.data.read_bytes(), 30)
    windows = make_windows(prices["close"].to_numpy(), pd.DatetimeIndex(prices["month"]), 12)
    train, test = split_chronologically(windows, 0.2)
    fit, validation = split_chronologically(train, VALIDATION_FRACTION)
    scaler = WindowScaler.fit(fit)
    parts = {"validation": validation, "test": test}
    seeds = [int(s) for s in args.seeds.split(",")]
    naive = {p: rmse(w.y, w.last) for p, w in parts.items()}
    rows, preds = [], {}
    plan = [
        (v, m) for v in ("baseline", "early_stopping", "dropout", "cosine_lr") for m in KERAS_MODELS
    ] + [("dense_only", "dense_only")]
    for variant, name in plan:
        for seed in seeds:
            out = fit_predict(variant, name, fit, parts, scaler, seed)
            preds[(variant, name, seed)] = out
            rows.append(
                {
                    "variant": variant,
                    "model": name,
                    "seed": seed,
                    **{f"{p}_rmse": rmse(parts[p].y, out[p]) for p in parts},
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    for seed in seeds:  # ensemble: mean of the four baseline networks
        out = {
            p: np.mean([preds[("baseline", m, seed)][p] for m in KERAS_MODELS], axis=0)
            for p in parts
        }
        rows.append(
            {
                "variant": "ensemble_of_4",
                "model": "ensemble",
                "seed": seed,
                **{f"{p}_rmse": rmse(parts[p].y, out[p]) for p in parts},
            }
        )
    frame = pd.DataFrame(rows)
    summary = (
        frame.groupby(["variant", "model"], sort=False)
        .agg(
            validation_rmse=("validation_rmse", "mean"),
            test_rmse=("test_rmse", "mean"),
            test_std=("test_rmse", "std"),
        )
        .reset_index()
    )
    chosen = summary.loc[summary["validation_rmse"].idxmin()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        **where_ran(),
        "seeds": seeds,
        "fit_samples": len(fit),
        "validation_samples": len(validation),
        "validation_months": [str(validation.months[0].date()), str(validation.months[-1].date())],
        "naive_rmse": naive,
    }
    (RESULTS / "tuning.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "runs": rows,
                "summary": summary.to_dict("records"),
                "chosen_on_validation": chosen.to_dict(),
            },
            indent=2,
            default=float,
        )
    )
    lines = [
        f"Tuning on a validation tail of the training data ({len(fit)} fit / {len(validation)}"
        f" validation samples, targets {meta['validation_months'][0]} … "
        f"{meta['validation_months'][1]}); seeds {seeds}; mean test RMSE over seeds. "
        f"Naive RMSE: validation {naive['validation']:.1f}, test {naive['test']:.1f}"
        f" ({describe(meta)}).",
        "",
        "| variant | model | validation RMSE | test RMSE |",
        "|---|---|---:|---:|",
        *[
            f"| {r.variant} | {r.model} | {r.validation_rmse:.2f} | {r.test_rmse:.1f} ± "
            f"{r.test_std:.1f} |"
            for r in summary.itertuples(index=False)
        ],
        "",
        f"Best on validation: {chosen['variant']} / {chosen['model']} "
        f"(validation {chosen['validation_rmse']:.2f}), test RMSE {chosen['test_rmse']:.1f}.",
    ]
    (RESULTS / "tuning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
