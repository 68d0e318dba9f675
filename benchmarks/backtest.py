"""Backtest benchmark: 60 origins x the four Keras models, warm start vs from scratch.

Runs ``sp500 backtest`` on the real data once per configuration, each into its own
temporary warehouse, and reads the results back from DuckDB: wall time, each model's
RMSE, theil_u2 and Diebold-Mariano p-value against naive, and the RMSE of every warm
configuration relative to from-scratch. Writes ``benchmarks/results/backtest.json`` and
``backtest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sp500_monthly.csv"
RESULTS = ROOT / "benchmarks" / "results"
SP500 = Path(sys.executable).with_name("sp500")
KERAS = ["simple_rnn", "gru", "lstm", "conv1d_lstm"]
CONFIGS: dict[str, list[str]] = {
    # a full fit once a year, 10 warm-start epochs in the months between
    "warm, refit every 12": ["--warm-start", "--refit-every", "12", "--warm-epochs", "10"],
    # one full fit, then only warm starts
    "warm, refit every 60": ["--warm-start", "--refit-every", "60", "--warm-epochs", "10"],
    # the command's defaults: a full 60-epoch fit at every origin (the reference)
    "scratch": ["--refit-every", "1"],
}
TARGET_SECONDS = 300.0
TARGET_RMSE_RATIO = 0.02


def run_config(name: str, flags: list[str], origins: int, runner: str) -> dict[str, object]:
    """Run one backtest configuration; return its wall time and per-model results."""
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Path(tmp) / "bench.duckdb"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SP500_", "PREFECT_"))}
        env["PREFECT_HOME"] = str(Path(tmp) / "prefect")
        command = [
            str(SP500),
            "backtest",
            "--origins",
            str(origins),
            "--task-runner",
            runner,
            "--source",
            str(DATA),
            "--warehouse",
            str(warehouse),
            *flags,
        ]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"error: {name} failed:\n{done.stderr[-3000:]}")
        with duckdb.connect(str(warehouse), read_only=True) as con:
            rows = con.execute(
                "SELECT model, rmse, mae, theil_u2, dm_stat, dm_pvalue, train_seconds, n"
                " FROM backtest_leaderboard ORDER BY rank"
            ).fetchall()
            fits = dict(
                con.execute(
                    "SELECT fit, count(*) FROM backtest_predictions GROUP BY fit"
                ).fetchall()
            )
    keys = ["model", "rmse", "mae", "theil_u2", "dm_stat", "dm_pvalue", "train_seconds", "n"]
    models = [dict(zip(keys, row, strict=True)) for row in rows]
    print(f"{name}: {wall:.0f} s", flush=True)
    return {"config": name, "flags": flags, "wall_seconds": wall, "fits": fits, "models": models}


def fmt(value: object, digits: int = 1) -> str:
    """A cell of the markdown table."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def main() -> None:
    """Run every configuration and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--origins", type=int, default=60)
    parser.add_argument("--task-runner", default="process", choices=["thread", "process", "dask"])
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"error: the real data is missing: {DATA}")
    results = [
        run_config(name, CONFIGS[name], args.origins, args.task_runner) for name in args.configs
    ]
    scratch = next((r for r in results if r["config"] == "scratch"), None)
    base = {m["model"]: m["rmse"] for m in scratch["models"]} if scratch else {}
    for result in results:
        for m in result["models"]:
            m["rmse_vs_scratch"] = m["rmse"] / base[m["model"]] - 1 if m["model"] in base else None
        worst = [abs(m["rmse_vs_scratch"]) for m in result["models"] if m["model"] in KERAS]
        result["max_keras_rmse_change"] = max(worst) if base and worst else None
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "origins": args.origins,
        "task_runner": args.task_runner,
        "targets": {"warm_wall_seconds": TARGET_SECONDS, "rmse_within": TARGET_RMSE_RATIO},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "backtest.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    lines = [
        f"Backtest, {args.origins} origins, all six models, `--task-runner {args.task_runner}`"
        f" ({meta['date']}, {meta['machine']}); DM p-value: Diebold-Mariano test of squared"
        " errors against naive with the HLN correction (two-sided).",
        "",
        "| configuration | wall s | fits (scratch/warm) | model | RMSE | MAE | theil_u2"
        " | DM p-value | train s | RMSE vs scratch |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        fits = result["fits"]
        for i, m in enumerate(result["models"]):
            head = (
                [
                    result["config"],
                    f"{result['wall_seconds']:.0f}",
                    f"{fits.get('scratch', 0)}/{fits.get('warm', 0)}",
                ]
                if i == 0
                else ["", "", ""]
            )
            change = m["rmse_vs_scratch"]
            cells = [
                *head,
                m["model"],
                fmt(m["rmse"]),
                fmt(m["mae"]),
                fmt(m["theil_u2"], 3),
                fmt(m["dm_pvalue"], 3),
                fmt(m["train_seconds"], 0),
                "-" if change is None or result is scratch else f"{change:+.1%}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for result in results:
        if result is scratch:
            continue
        change = result["max_keras_rmse_change"]
        lines.append(
            f"- {result['config']}: {result['wall_seconds']:.0f} s"
            f" (target ≤ {TARGET_SECONDS:.0f} s:"
            f" {'met' if result['wall_seconds'] <= TARGET_SECONDS else 'missed'})"
            + (
                f"; largest Keras RMSE change vs scratch {change:.1%}"
                f" (target ≤ {TARGET_RMSE_RATIO:.0%}:"
                f" {'met' if change <= TARGET_RMSE_RATIO else 'missed'})"
                if change is not None
                else ""
            )
        )
    (RESULTS / "backtest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
