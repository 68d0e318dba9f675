"""Stacking benchmark: wall seconds of one stacked fit of G members against separate fits.

For every network of the registry and G = 1, 5, 15, 60, it fits the last G backtest origins
of the real data (each member on the samples before its origin, with its own scaler) as one
stacked Keras model, 60 epochs, batch 32, one process. Separate fits are plain Keras fits
of the registry network (one compiled call per epoch, as the pipeline used to fit), timed
at ``--separate`` origins; G separate fits are counted as G times their median.
Writes ``benchmarks/results/stacking.json`` and ``stacking.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import keras
import numpy as np
from provenance import DATA, describe, real_windows, where_ran

from tasks.data.windows import Windows, fit_scaler
from tasks.models.registry import KERAS_BUILDERS
from tasks.models.stacked import Member, batches_per_epoch, fit_stacked

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def separate_fit(name: str, windows: Windows, origin: int, epochs: int, seed: int) -> float:
    """Seconds of one plain Keras fit of the registry network on samples before ``origin``."""
    started = time.perf_counter()
    train = windows.part(0, origin)
    scaler = fit_scaler("window", train)
    keras.utils.set_random_seed(seed)
    network = KERAS_BUILDERS[name](windows.X.shape[1], seed)
    network.compile(
        optimizer=keras.optimizers.Adam(),
        loss="mse",
        steps_per_execution=batches_per_epoch(len(train), 32),
    )
    network.fit(
        scaler.transform_X(train.X),
        scaler.transform_y(train.y, train.X),
        epochs=epochs,
        batch_size=32,
        shuffle=True,
        verbose=0,
    )
    return time.perf_counter() - started


def step_flops(name: str, window: int = 12, batch: int = 32) -> float:
    """Matrix-product FLOPs of one member's training step: the forward pass's, times 3.

    The backward pass of a product costs two products of its size; elementwise work (gates,
    activations, Adam) is left out, so this undercounts what the machine does.
    """
    forward = 0.0
    for layer in KERAS_BUILDERS[name](window, 0).layers[1:]:  # after the input layer
        config, inputs = layer.get_config(), layer.input.shape[-1]
        gates = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}.get(type(layer).__name__)
        if gates is not None:
            units = config["units"]
            forward += 2 * batch * window * (inputs + units) * gates * units
        elif isinstance(layer, keras.layers.Conv1D):
            forward += 2 * batch * window * config["kernel_size"][0] * inputs * config["filters"]
        elif isinstance(layer, keras.layers.Dense):
            forward += 2 * batch * inputs * config["units"]
    return 3 * forward


def stacked_fit(name: str, windows: Windows, members: int, epochs: int, seed: int) -> float:
    """Seconds of one stacked fit of the last ``members`` origins."""
    n = len(windows)
    origins = range(n - members, n)
    started = time.perf_counter()
    group = [
        Member(seed, i, fit_scaler("window", windows.part(0, i)), f"origin {i}") for i in origins
    ]
    fit_stacked(
        name, KERAS_BUILDERS[name], windows.part(0, n - 1), group, epochs=epochs, batch_size=32
    )
    return time.perf_counter() - started


def main() -> None:
    """Time every network at every G and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--members", default="1,5,15,60")
    parser.add_argument("--separate", type=int, default=3, help="separate fits timed per network")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    windows = real_windows(args.data)
    sizes = [int(g) for g in args.members.split(",")]
    rows = []
    for name in KERAS_BUILDERS:
        n = len(windows)
        timed = np.linspace(n - max(sizes), n - 1, args.separate).astype(int)
        separate = [separate_fit(name, windows, int(i), args.epochs, args.seed) for i in timed]
        per_fit = statistics.median(separate)
        for g in sizes:
            wall = stacked_fit(name, windows, g, args.epochs, args.seed)
            steps = sum(batches_per_epoch(i, 32) for i in range(n - g, n)) * args.epochs
            rows.append(
                {
                    "model": name,
                    "members": g,
                    "stacked_seconds": wall,
                    "seconds_per_member": wall / g,
                    "separate_seconds_per_fit": per_fit,
                    "separate_fits_timed": separate,
                    "speedup": g * per_fit / wall,
                    "gflop_per_second": steps * step_flops(name) / wall / 1e9,
                }
            )
            print(f"{name} G={g}: {wall:.1f} s stacked, {g * per_fit:.1f} s separate", flush=True)
    meta = {**where_ran(), "epochs": args.epochs, "batch_size": 32, "samples": len(windows)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stacking.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2) + "\n"
    )
    lines = [
        f"Stacked fits against separate fits, {args.epochs} epochs, batch 32, the last G backtest"
        f" origins of the real data, one process ({describe(meta)}). Separate: G x the median of"
        f" {args.separate} timed plain Keras fits. GFLOP/s: the members' matrix products"
        " (forward and backward) per second of the stacked fit, build and compile included.",
        "",
        "| model | G | stacked s | s per member | separate s (G fits) | speed-up | GFLOP/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['members']} | {r['stacked_seconds']:.1f}"
            f" | {r['seconds_per_member']:.2f}"
            f" | {r['members'] * r['separate_seconds_per_fit']:.1f} | {r['speedup']:.1f}x"
            f" | {r['gflop_per_second']:.1f} |"
        )
    (RESULTS / "stacking.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
