"""The lesson's exercise 3: a wider Conv1D (filters 64, kernel 5) against the default and lstm.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/variants.py``). On the real data
and the lesson's split (60 epochs), each spec is fitted with ``--seeds`` members (one
stacked fit, as ``sp500 run --seeds 3`` does); the table gives each member's test RMSE,
their mean, the ensemble's RMSE, and the due-diligence tests of the pipeline
(Diebold-Mariano over the 181 test months). Writes ``benchmarks/results/variants.json``
and ``variants.md``.
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

from core.specs import canonical
from tasks.data.validate import parse_prices
from tasks.data.windows import fit_scaler, make_windows, split_chronologically
from tasks.evaluation.evaluate import compare_models, evaluate
from tasks.models.train import fit_model
from tasks.run.report import due_diligence

SPECS = ("naive", "lstm", "conv1d_lstm", "conv1d_lstm[filters=64,kernel_size=5]")


def main() -> None:
    """Fit every spec, score it, test the pairs and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"error: real data not found at {args.data}")
    prices = parse_prices(args.data.read_bytes(), 30)
    windows = make_windows(prices["close"].to_numpy(), pd.DatetimeIndex(prices["month"]), 12)
    train, test = split_chronologically(windows, 0.2)
    scaler = fit_scaler("window", train)
    rows, evaluations = [], []
    for spec in (canonical(s) for s in SPECS):
        model = fit_model(
            spec, train, scaler, epochs=args.epochs, batch_size=32, seed=args.seed, seeds=args.seeds
        )
        result = evaluate(model, train, test)
        evaluations.append(result)
        members = result.seed_metrics["rmse"].tolist()
        rows.append(
            {
                "model": spec,
                "n_params": model.n_params,
                "member_rmse": members,
                "member_mean": float(np.mean(members)) if members else None,
                "ensemble_rmse": result.metrics["rmse"],
                "theil_u2": result.metrics["theil_u2"],
                "seconds": model.train_seconds,
            }
        )
        print(f"{spec}: ensemble {result.metrics['rmse']:.1f}, members {members}", flush=True)
    comparisons = compare_models(evaluations)
    verdicts = due_diligence({r["model"]: r["ensemble_rmse"] for r in rows}, comparisons)
    meta = {**where_ran(), "epochs": args.epochs, "seeds": args.seeds, "first_seed": args.seed}
    seeds = f"{args.seed}-{args.seed + args.seeds - 1}"
    lines = [
        f"The lesson's exercise 3 on the real data, lesson split 724/181, {args.epochs} epochs,"
        f" seeds {seeds} as one {args.seeds}-member ensemble per network ({describe(meta)}).",
        "",
        "| model | parameters | RMSE per seed | mean of seeds | ensemble RMSE | theil_u2 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per_seed = ", ".join(f"{v:.1f}" for v in r["member_rmse"]) or "-"
        mean = f"{r['member_mean']:.1f}" if r["member_mean"] is not None else "-"
        lines.append(
            f"| {r['model']} | {r['n_params']:,} | {per_seed} | {mean} "
            f"| {r['ensemble_rmse']:.1f} | {r['theil_u2']:.3f} |"
        )
    lines += ["", "Due diligence (Diebold-Mariano over the 181 test months, ensembles):", ""]
    lines += [f"- {v}" for v in verdicts]
    payload = {"meta": meta, "runs": rows, "comparisons": comparisons.to_dict("records")}
    write_results("variants", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
