"""Forecasts for 12 months: each model's h-step test accuracy, the champion's path, the cost.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/horizons.py``). Runs
``sp500 run`` with its default settings (six models, 5 seeds, 60 epochs, ``--horizon 12``)
on the real data, and ``sp500 run --horizon 1`` beside it, alternately for ``--repeat``
rounds, a fresh warehouse each. From the first ``--horizon 12`` run's warehouse it reads:

1. ``horizon_metrics``: every model's test RMSE and theil_u2 (against naive's flat path)
   of its recursive forecasts at h = 1, 2, 3, 6, 9 and 12, over the 181 - h + 1 test
   origins whose target is known;
2. the champion's forecast for the 12 months after the data, with its 80 % and 95 %
   bands (from its own h-step test errors).

Writes ``benchmarks/results/horizons.json`` and ``horizons.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import DATA, describe, where_ran, write_results
from sp500_cli import clean_env, timed_sp500

from tasks.run.report import champion_path, choose_champion
from warehouse.store import query, read_run_report

SHOWN = (1, 2, 3, 6, 9, 12)


def run(horizon: int, warehouse: Path, data: Path) -> float:
    """Wall seconds of one default ``sp500 run --horizon H`` into a new warehouse."""
    args = ["run", "--source", str(data), "--warehouse", str(warehouse)]
    wall, _ = timed_sp500([*args, "--horizon", str(horizon)], clean_env())
    return wall


def read_results(warehouse: Path) -> dict[str, object]:
    """h-step metrics of every model and the champion's path from a finished run."""
    columns, rows = query(
        warehouse,
        "SELECT h.model, h.horizon, h.rmse, h.theil_u2, h.n FROM horizon_metrics h"
        " JOIN leaderboard l USING (run_id, model) ORDER BY l.rank, h.horizon",
    )
    metrics = [dict(zip(columns, r, strict=True)) for r in rows]
    report = read_run_report(warehouse)
    champion, reason = choose_champion(report.leaderboard)
    path = champion_path(report.forecasts, champion)
    path = path.assign(target_month=path["target_month"].dt.strftime("%Y-%m"))
    return {
        "horizon_metrics": metrics,
        "champion": champion,
        "reason": reason,
        "path": path.drop(columns="model").to_dict("records"),
    }


def markdown(results: dict[str, object], timing: dict[str, list[float]], meta: dict) -> str:
    """The results file's text: metrics per horizon, the champion's path, the cost."""
    by_model: dict[str, dict[int, dict]] = {}
    for r in results["horizon_metrics"]:
        by_model.setdefault(r["model"], {})[r["horizon"]] = r
    lines = [
        "Recursive forecasts of `sp500 run` (defaults: 5 seeds, 60 epochs, --horizon 12) on the"
        f" real data, lesson split 724/181 ({describe(meta)}).",
        "",
        "Test RMSE at each horizon (theil_u2 against naive's flat path in brackets); n = 181 - h"
        " + 1 origins:",
        "",
        "| model | " + " | ".join(f"h = {h}" for h in SHOWN) + " |",
        "|---|" + "---:|" * len(SHOWN),
    ]
    for model, rows in by_model.items():
        cells = [f"{rows[h]['rmse']:.1f} ({rows[h]['theil_u2']:.3f})" for h in SHOWN]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Champion `{results['champion']}`: {results['reason']}",
        "",
        "| month | h | point | 80 % band | 95 % band | 95 % width |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for p in results["path"]:
        width = (p["upper_95"] - p["lower_95"]) / p["point"] * 100
        lines.append(
            f"| {p['target_month']} | {p['horizon']} | {p['point']:,.1f} "
            f"| {p['lower_80']:,.1f} … {p['upper_80']:,.1f} "
            f"| {p['lower_95']:,.1f} … {p['upper_95']:,.1f} | {width:.1f} % |"
        )
    h12, h1 = statistics.median(timing["12"]), statistics.median(timing["1"])
    lines += [
        "",
        f"Cost: `sp500 run` {h12:.1f} s with --horizon 12 against {h1:.1f} s with --horizon 1"
        f" (medians of {len(timing['1'])} alternating rounds; ratio {h12 / h1:.2f}).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the pairs, read the first horizon-12 warehouse and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"error: real data not found at {args.data}")
    timing: dict[str, list[float]] = {"12": [], "1": []}
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeat):
            for horizon in (12, 1) if k % 2 == 0 else (1, 12):
                warehouse = Path(tmp) / f"h{horizon}-{k}" / "w.duckdb"
                warehouse.parent.mkdir()
                timing[str(horizon)].append(run(horizon, warehouse, args.data))
                print(f"round {k + 1}: --horizon {horizon} {timing[str(horizon)][-1]:.1f} s")
                if horizon == 12 and not results:
                    results = read_results(warehouse)
    meta = {**where_ran(), "repeat": args.repeat}
    payload = {"meta": meta, "seconds": timing, **results}
    write_results("horizons", payload, markdown(results, timing, meta), default=str)


if __name__ == "__main__":
    main()
