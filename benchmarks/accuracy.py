"""Accuracy benchmark: our models (window vs minmax scaling, 3 seeds), baselines, and peers.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/accuracy.py``). Writes
``benchmarks/results/accuracy.json`` and ``accuracy.md``. Peers come from statsforecast (a
``bench`` extra, not a pipeline dependency) and are fitted on log prices of the training
months, then scored one step ahead over the same 181 test months without refitting.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import describe, where_ran

from core.settings import KERAS_MODELS
from tasks.data.validate import parse_prices
from tasks.data.windows import fit_scaler, make_windows, split_chronologically
from tasks.evaluation.evaluate import evaluate
from tasks.models.train import fit_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sp500_monthly.csv"
RESULTS = ROOT / "benchmarks" / "results"
LESSON = {  # the lesson's own table: test RMSE / MAE
    "simple_rnn": (917.1, 578.0),
    "gru": (568.9, 377.4),
    "lstm": (423.4, 293.5),
    "conv1d_lstm": (507.0, 353.1),
}


def ours(prices: pd.DataFrame, seeds: list[int], epochs: int) -> list[dict[str, object]]:
    """Test metrics of every model for each scaling and seed, on the lesson's split."""
    windows = make_windows(prices["close"].to_numpy(), pd.DatetimeIndex(prices["month"]), 12)
    train, test = split_chronologically(windows, 0.2)
    rows = []
    for scaling in ("window", "minmax"):
        scaler = fit_scaler(scaling, train)
        for name in ("naive", "drift", *KERAS_MODELS):
            for seed in seeds if name in KERAS_MODELS else seeds[:1]:
                model = fit_model(name, train, scaler, epochs=epochs, batch_size=32, seed=seed)
                m = evaluate(model, train, test).metrics
                rows.append(
                    {
                        "scaling": scaling,
                        "model": name,
                        "seed": seed,
                        "rmse": m["rmse"],
                        "mae": m["mae"],
                        "theil_u2": m["theil_u2"],
                        "seconds": model.train_seconds,
                        "n": m["n"],
                    }
                )
                print(
                    f"{scaling:6} {name:12} seed {seed}: rmse {m['rmse']:.1f}"
                    f" mae {m['mae']:.1f} ({model.train_seconds:.1f} s)",
                    flush=True,
                )
    return rows


def peers(prices: pd.DataFrame, n_test: int) -> list[dict[str, object]]:
    """Statsforecast AutoARIMA/AutoETS/AutoTheta on log prices, one step ahead, no refit."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    frame = pd.DataFrame(
        {"unique_id": "sp500", "ds": prices["month"], "y": np.log(prices["close"].to_numpy())}
    )
    rows = []
    for model in (AutoARIMA(), AutoETS(), AutoTheta()):
        started = time.perf_counter()
        cv = StatsForecast(models=[model], freq="MS", n_jobs=1).cross_validation(
            df=frame, h=1, n_windows=n_test, step_size=1, refit=False
        )
        seconds = time.perf_counter() - started
        name = str(model)
        actual, predicted = np.exp(cv["y"].to_numpy()), np.exp(cv[name].to_numpy())
        last = prices["close"].to_numpy()[-n_test - 1 : -1]
        rmse = float(np.sqrt(np.mean((actual - predicted) ** 2)))
        rows.append(
            {
                "scaling": "log (statsforecast)",
                "model": f"log-{name}",
                "seed": None,
                "rmse": rmse,
                "mae": float(np.mean(np.abs(actual - predicted))),
                "theil_u2": rmse / float(np.sqrt(np.mean((actual - last) ** 2))),
                "seconds": seconds,
                "n": len(cv),
            }
        )
        print(f"peer {name}: rmse {rmse:.1f} ({seconds:.1f} s)", flush=True)
    return rows


def summarize(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Mean ± std over seeds per scaling and model."""
    frame = pd.DataFrame(rows)
    return (
        frame.groupby(["scaling", "model"], sort=False)
        .agg(
            rmse_mean=("rmse", "mean"),
            rmse_std=("rmse", "std"),
            mae_mean=("mae", "mean"),
            mae_std=("mae", "std"),
            theil_u2=("theil_u2", "mean"),
            seconds=("seconds", "mean"),
            runs=("rmse", "size"),
        )
        .reset_index()
    )


def _spread(mean: float, std: float, runs: int) -> str:
    return f"{mean:.1f} ± {std:.1f}" if runs > 1 else f"{mean:.1f}"


def markdown(summary: pd.DataFrame, meta: dict[str, object]) -> str:
    """The results table as markdown, with the lesson's numbers beside ours."""
    lines = [
        f"Accuracy on the real data, lesson split 724/181, {meta['epochs']} epochs, seeds "
        f"{meta['seeds']} ({describe(meta)}).",
        "",
        "| scaling | model | test RMSE | test MAE | theil_u2 | fit s | lesson RMSE / MAE |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples(index=False):
        lesson = LESSON.get(r.model) if r.scaling == "minmax" else None
        lines.append(
            f"| {r.scaling} | {r.model} | {_spread(r.rmse_mean, r.rmse_std, r.runs)} "
            f"| {_spread(r.mae_mean, r.mae_std, r.runs)} | {r.theil_u2:.3f} | {r.seconds:.1f} "
            f"| {f'{lesson[0]} / {lesson[1]}' if lesson else ''} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seeds", default="42,43,44")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"error: real data not found at {args.data}")
    prices = parse_prices(args.data.read_bytes(), 30)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = ours(prices, seeds, args.epochs)
    rows += peers(prices, n_test=181)
    summary = summarize(rows)
    meta = {**where_ran(), "epochs": args.epochs, "seeds": seeds}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "accuracy.json").write_text(
        json.dumps(
            {"meta": meta, "runs": rows, "summary": summary.to_dict("records")},
            indent=2,
            default=float,
        )
    )
    (RESULTS / "accuracy.md").write_text(markdown(summary, meta))
    print(markdown(summary, meta))


if __name__ == "__main__":
    main()
