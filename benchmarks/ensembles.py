"""Seed-ensemble benchmark: accuracy and stability of N-seed ensembles, and their cost.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/ensembles.py``). On the real data
and the lesson's split (724 train / 181 test, 60 epochs):

1. every network is fitted as two disjoint seed sets of ``--seeds`` members (42-46 and
   47-51 by default), each set one stacked fit as ``sp500 run`` does it; the test RMSE of
   each ensemble (the mean of its members' price forecasts) is reported beside its
   members' own RMSEs, and each set crowns its champion with the pipeline's rule;
2. ``sp500 run --seeds N`` against ``sp500 run --seeds 1`` (both with the forecast fits),
   alternately, ``--repeat`` rounds, a fresh warehouse each.

Writes ``benchmarks/results/ensembles.json`` and ``ensembles.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import DATA, describe, where_ran, write_results
from sp500_cli import clean_env, timed_sp500

from core.settings import ALL_MODELS
from tasks.data.validate import parse_prices
from tasks.data.windows import fit_scaler, make_windows, split_chronologically
from tasks.evaluation.evaluate import evaluate, rank_evaluations
from tasks.models.train import fit_model
from tasks.run.report import choose_champion


def seed_sets(
    prices: pd.DataFrame, first_seeds: list[int], size: int, epochs: int
) -> list[dict[str, object]]:
    """Ensemble and member test RMSEs of every model for each seed set."""
    windows = make_windows(prices["close"].to_numpy(), pd.DatetimeIndex(prices["month"]), 12)
    train, test = split_chronologically(windows, 0.2)
    scaler = fit_scaler("window", train)
    rows = []
    for first in first_seeds:
        evaluations = []
        for name in ALL_MODELS:
            model = fit_model(
                name, train, scaler, epochs=epochs, batch_size=32, seed=first, seeds=size
            )
            result = evaluate(model, train, test)
            evaluations.append(result)
            members = result.seed_metrics["rmse"].tolist()
            rows.append(
                {
                    "seeds": f"{first}-{first + size - 1}" if members else "",
                    "first_seed": first,
                    "model": name,
                    "ensemble_rmse": result.metrics["rmse"],
                    "theil_u2": result.metrics["theil_u2"],
                    "member_rmse": members,
                    "member_mean": float(np.mean(members)) if members else None,
                    "member_min": min(members) if members else None,
                    "member_max": max(members) if members else None,
                    "seconds": model.train_seconds,
                }
            )
            print(
                f"seeds {first}+{size} {name:12} ensemble {result.metrics['rmse']:.1f}"
                + (f", members {min(members):.1f} … {max(members):.1f}" if members else "")
                + f" ({model.train_seconds:.1f} s)",
                flush=True,
            )
        champion, _ = choose_champion(rank_evaluations(evaluations))
        for row in rows[-len(ALL_MODELS) :]:
            row["champion"] = champion
    return rows


def timed_run(seeds: int, data: Path, work: Path) -> float:
    """Wall seconds of one ``sp500 run --seeds N`` on a fresh warehouse."""
    env = clean_env(
        PREFECT_HOME=str(work / "prefect"),
        SP500_WAREHOUSE=str(work / f"w{seeds}-{time.monotonic_ns()}.duckdb"),
        SP500_SOURCE=str(data),
    )
    wall, _ = timed_sp500(["run", "--seeds", str(seeds)], env, cwd=work)
    print(f"sp500 run --seeds {seeds}: {wall:.1f} s", flush=True)
    return wall


def markdown(rows: list[dict[str, object]], timing: dict[str, object], meta: dict) -> str:
    """The results as markdown tables."""
    frame = pd.DataFrame(rows)
    lines = [
        f"Seed ensembles on the real data, lesson split 724/181, {meta['epochs']} epochs, "
        f"{meta['size']} members per ensemble ({describe(meta)}).",
        "",
        "| model | seeds | ensemble RMSE | members' RMSE (mean, min … max) | champion of the set |",
        "|---|---|---:|---:|---|",
    ]
    for r in frame.itertuples(index=False):
        members = (
            f"{r.member_mean:.1f} ({r.member_min:.1f} … {r.member_max:.1f})"
            if r.member_rmse
            else "deterministic"
        )
        lines.append(
            f"| {r.model} | {r.seeds or '-'} | {r.ensemble_rmse:.1f} | {members} | {r.champion} |"
        )
    wide = frame.pivot(index="model", columns="first_seed", values="ensemble_rmse")
    gap = (wide.max(axis=1) - wide.min(axis=1)).reindex(list(ALL_MODELS))
    lines += [
        "",
        "Ensemble RMSE difference between the two seed sets: "
        + ", ".join(f"{m} {v:.2f}" for m, v in gap.items())
        + ".",
    ]
    if timing:
        lines += [
            "",
            f"`sp500 run --seeds {meta['size']}` against `--seeds 1` (forecast fits included), "
            f"{timing['rounds']} alternating rounds: median {timing['median_n']:.1f} s against "
            f"{timing['median_1']:.1f} s, ratio {timing['ratio']:.2f}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--size", type=int, default=5, help="members per ensemble")
    parser.add_argument("--sets", default="42,47", help="first seed of each set")
    parser.add_argument("--repeat", type=int, default=2, help="timing rounds (0: skip)")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"error: real data not found at {args.data}")
    prices = parse_prices(args.data.read_bytes(), 30)
    firsts = [int(s) for s in args.sets.split(",")]
    rows = seed_sets(prices, firsts, args.size, args.epochs)
    timing: dict[str, object] = {}
    if args.repeat:
        walls: dict[int, list[float]] = {1: [], args.size: []}
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.repeat):
                order = (1, args.size) if k % 2 == 0 else (args.size, 1)
                for seeds in order:
                    walls[seeds].append(timed_run(seeds, args.data.resolve(), Path(tmp)))
        median_1, median_n = statistics.median(walls[1]), statistics.median(walls[args.size])
        timing = {
            "rounds": args.repeat,
            "seconds_1": walls[1],
            "seconds_n": walls[args.size],
            "median_1": median_1,
            "median_n": median_n,
            "ratio": median_n / median_1,
        }
    meta = {**where_ran(), "epochs": args.epochs, "size": args.size, "sets": firsts}
    payload = {"meta": meta, "runs": rows, "timing": timing}
    write_results("ensembles", payload, markdown(rows, timing, meta))


if __name__ == "__main__":
    main()
