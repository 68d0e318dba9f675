"""Does a member with few windows train as well inside a big stacked fit as on its own?

In the rolling evaluation the 1975 origin's member (about 300 windows) shares a stacked fit
with origins that have 900: batches are drawn over all 900, so it sees fewer of its own
samples per batch and more steps per epoch. For each network and seeds 42, 43, 44 this fits
the early member (a) inside a stacked fit with a member that has every window (the largest
origin sets the batches, as in the run) and (b) alone, with the same seed, windows, scaler,
epochs and batch size, and scores both on the 120 months after its origin (one step ahead,
never seen by either). Writes ``benchmarks/results/early_member.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import DATA, describe, where_ran, write_results

from core.settings import KERAS_MODELS, Settings
from tasks.data.windows import fit_scaler, make_windows
from tasks.evaluation.rolling import plan_rolling
from tasks.models.registry import model_spec
from tasks.models.stacked import Member, fit_stacked

SCORED = 120  # months after the origin


def main() -> None:
    """Fit both ways, score, write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    args = parser.parse_args()
    settings = Settings()
    prices = pd.read_csv(args.data)
    windows = make_windows(
        prices["close"].to_numpy(dtype=np.float64), pd.DatetimeIndex(prices["date"]), 12
    )
    plan = plan_rolling(windows, None, settings.refit_every, 1)
    early, everything = plan.cuts[0], len(windows)
    scaler_early = fit_scaler(settings.scaling, windows.part(0, early))
    scaler_all = fit_scaler(settings.scaling, windows)
    scored = slice(early, early + SCORED)
    actual = windows.y[scored]
    options = {"epochs": settings.epochs, "batch_size": settings.batch_size}
    rows = []
    for name in KERAS_MODELS:
        builder = model_spec(name).builder
        for seed in args.seeds:
            alone = fit_stacked(
                name,
                builder,
                windows.part(0, early),
                [Member(seed, early, scaler_early, "alone")],
                **options,
            )
            shared = fit_stacked(
                name,
                builder,
                windows,
                [
                    Member(seed, early, scaler_early, "early"),
                    Member(seed, everything, scaler_all, "all"),
                ],
                **options,
            )
            scores = {}
            for label, fit in (("alone", alone), ("stacked", shared)):
                predicted = fit.predict(windows.X[scored])[:, 0]
                scores[label] = float(np.sqrt(np.mean((actual - predicted) ** 2)))
            rows.append({"model": name, "seed": seed, **scores})
            print(f"{name} seed {seed}: {scores}", flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby("model", sort=False)[["alone", "stacked"]].mean()
    summary["change"] = summary["stacked"] / summary["alone"] - 1.0
    meta = {**where_ran(), "seeds": args.seeds, "early_windows": early}
    month = f"{windows.months[early - 1]:%Y-%m}"
    lines = [
        f"The rolling evaluation's first member (origin {month}, {early} windows) trained"
        f" alone and inside a stacked fit with a {everything}-window member, seeds"
        f" {', '.join(map(str, args.seeds))}, {settings.epochs} epochs, batch"
        f" {settings.batch_size}; one-step RMSE on the {SCORED} months after the origin"
        f" ({describe(meta)}).",
        "",
        "| model | RMSE alone (seed mean) | RMSE stacked | change | per seed (alone / stacked) |",
        "|---|---:|---:|---:|---|",
    ]
    for model, r in summary.iterrows():
        seeds = frame[frame["model"] == model]
        cells = ", ".join(
            f"{a:.2f} / {s:.2f}" for a, s in zip(seeds["alone"], seeds["stacked"], strict=True)
        )
        lines.append(
            f"| {model} | {r['alone']:.2f} | {r['stacked']:.2f} | {r['change']:+.1%} | {cells} |"
        )
    worst = float(summary["change"].abs().max())
    lines += [
        "",
        f"Largest change: {worst:.1%} (target within 4 %: {'met' if worst <= 0.04 else 'missed'}).",
    ]
    write_results("early_member", {"meta": meta, "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
