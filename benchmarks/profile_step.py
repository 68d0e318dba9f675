"""Profile of one stacked training step: milliseconds per step under each setting tried.

A stacked network of G members (the run's 62, the backtest's 300) takes steps of 32 rows of
the real data's first windows, with ``MemberAdam`` and the masked loss, as the pipeline's
fits do. Each setting runs in a fresh process (TensorFlow's thread pools are fixed at
start), in alternating rounds; a process reports the best of three timings of a few epochs
after one warm-up epoch (which also pays tracing and XLA's compile, reported apart).

Settings: ``default`` (TensorFlow's thread pools, no XLA), ``xla`` (``jit_compile=True``),
``intra1`` (one thread per op, two ops at once). Writes ``benchmarks/results/profile_step``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provenance import describe, real_windows, where_ran, write_results

SETTINGS = ("default", "xla", "intra1")
STEPS = 28  # full batches of the real data's first 896 windows (the run's largest member: 29)


def one(name: str, members: int, setting: str, epochs: int) -> dict[str, float]:
    """In this process: warm-up seconds and best milliseconds per step of one setting."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    if setting == "intra1":
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(2)
    from tasks.data.windows import fit_scaler
    from tasks.models.registry import KERAS_BUILDERS
    from tasks.models.stacked import (
        Member,
        MemberAdam,
        build_stacked,
        masked_member_loss,
        training_arrays,
    )

    windows = real_windows()
    rows = STEPS * 32
    scaler = fit_scaler("window", windows.part(0, rows))
    group = [Member(42 + g, rows, scaler, str(g)) for g in range(members)]
    fit = build_stacked(name, KERAS_BUILDERS[name], 12, group)
    x, y = training_arrays(fit, windows.part(0, rows))
    fit.network.compile(
        optimizer=MemberAdam(members),
        loss=masked_member_loss,
        steps_per_execution=STEPS,
        jit_compile=setting == "xla",
    )
    started = time.perf_counter()
    fit.network.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    warm = time.perf_counter() - started
    best = np.inf
    for _ in range(3):
        started = time.perf_counter()
        fit.network.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0)
        best = min(best, time.perf_counter() - started)
    return {"warm_up_seconds": warm, "ms_per_step": 1000 * best / (epochs * STEPS)}


def main() -> None:
    """Run every setting for every network and size in alternating rounds; write results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        default="simple_rnn:62,gru:62,lstm:62,conv1d_lstm:62,lstm:300",
        help="model:G pairs (62: the run's members per network; 300: the backtest's)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "G", "SETTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, g, setting = args.one
        print(json.dumps(one(name, int(g), setting, args.epochs)))
        return
    cases = [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases.split(",")]
    found: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for name, g in cases:
            for setting in SETTINGS:
                command = [sys.executable, __file__, "--epochs", str(args.epochs), "--one"]
                done = subprocess.run(
                    [*command, name, str(g), setting],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                found.setdefault((name, g, setting), []).append(
                    json.loads(done.stdout.strip().splitlines()[-1])
                )
    rows = []
    for (name, g, setting), runs in found.items():
        ms = statistics.median(r["ms_per_step"] for r in runs)
        default = statistics.median(r["ms_per_step"] for r in found[(name, g, "default")])
        rows.append(
            {
                "model": name,
                "members": g,
                "setting": setting,
                "ms_per_step": ms,
                "warm_up_seconds": statistics.median(r["warm_up_seconds"] for r in runs),
                "against_default": ms / default,
                "runs": runs,
            }
        )
    meta = {**where_ran(), "rounds": args.rounds, "epochs": args.epochs, "steps": STEPS}
    lines = [
        f"One stacked training step (32 rows, {STEPS} steps an epoch), milliseconds per step:"
        f" the median over {args.rounds} alternating rounds of each process's best of three"
        f" {args.epochs}-epoch timings ({describe(meta)}). Warm-up: the first epoch, with"
        " tracing and (xla) the compile.",
        "",
        "| model | G | setting | ms per step | against default | warm-up s |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['members']} | {r['setting']} | {r['ms_per_step']:.2f}"
            f" | {r['against_default']:.2f}x | {r['warm_up_seconds']:.1f} |"
        )
    write_results("profile_step", {"meta": meta, "results": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
