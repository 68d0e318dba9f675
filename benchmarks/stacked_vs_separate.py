"""Stacked against separate fits on the backtest's origins: is the stacked path's RMSE seed luck?

For each seed, one network's 60-origin backtest with one member per origin (``sp500 backtest
--models M --seeds 1 --seed S``'s fits) two ways, on the real data: the backtest's own
stacked fit of every origin at once (``run_segment`` over the 60 origins: members of
unequal sizes, slots, ``SlotSchedule`` batches), and a separate fit per origin (the same
``run_segment`` over one origin: a one-member fit, which is a plain Keras fit with Keras's
shuffle). Both use the pipeline's scalers, seeds and forecasts; only the fits differ.
The separate fits run in two worker processes. Writes
``benchmarks/results/stacked_vs_separate.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provenance import describe, real_windows, where_ran, write_results

TARGET = 0.02  # issue 28: the two paths' mean RMSE within 2 % of each other


@functools.cache
def _windows():  # -> Windows, once per process (imported lazily, with TensorFlow)
    return real_windows()


def forecasts(model: str, origins: tuple[int, ...], seed: int, epochs: int) -> list[list[float]]:
    """(point, actual) per origin of one fit over ``origins`` (one origin: a separate fit)."""
    from tasks.evaluation.backtest import Segment, run_segment

    windows = _windows()
    segment = Segment(model=model, origins=origins, first_target="")
    frame = run_segment(
        segment, windows, scaling="window", epochs=epochs, batch_size=32, seed=seed, seeds=1
    )
    return frame[["point", "actual"]].to_numpy().tolist()


def rmse(rows: list[list[float]]) -> float:
    """Root mean squared error of (point, actual) rows."""
    return math.sqrt(statistics.fmean((p - a) ** 2 for p, a in rows))


def main() -> None:
    """Both paths for every seed; write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="simple_rnn")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--origins", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    n = len(_windows())
    origins = tuple(range(n - args.origins, n))
    runs = []
    with ProcessPoolExecutor(max_workers=2) as pool:
        for seed in seeds:
            stacked = pool.submit(forecasts, args.model, origins, seed, args.epochs)
            alone = [pool.submit(forecasts, args.model, (o,), seed, args.epochs) for o in origins]
            separate = [f.result()[0] for f in alone]
            runs.append(
                {"seed": seed, "stacked": rmse(stacked.result()), "separate": rmse(separate)}
            )
    mean_stacked = statistics.fmean(r["stacked"] for r in runs)
    mean_separate = statistics.fmean(r["separate"] for r in runs)
    gap = mean_stacked / mean_separate - 1
    meta = {**where_ran(), "model": args.model, "origins": args.origins, "epochs": args.epochs}
    lines = [
        f"{args.model}, one member per origin, the last {args.origins} origins of the real"
        f" data, {args.epochs} epochs: RMSE of the backtest's stacked fit against a separate"
        f" fit per origin, same seeds, scalers and forecasts ({describe(meta)}).",
        "",
        "| seed | stacked | separate | stacked vs separate |",
        "|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['seed']} | {r['stacked']:.1f} | {r['separate']:.1f}"
            f" | {r['stacked'] / r['separate'] - 1:+.1%} |"
        )
    lines += [
        f"| mean | {mean_stacked:.1f} | {mean_separate:.1f} | {gap:+.1%} |",
        "",
        f"- Mean RMSE within {TARGET:.0%} of each other:"
        f" {'met' if abs(gap) <= TARGET else 'missed'}.",
    ]
    results = {"meta": meta, "runs": runs, "gap": gap, "target": TARGET}
    write_results("stacked_vs_separate", results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
