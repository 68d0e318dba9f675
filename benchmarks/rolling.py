"""The rolling-origin evaluation of a default ``sp500 run`` on the real data: scores, champions.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/rolling.py``). Runs ``sp500 run``
with default settings (refit every 12 months from 1975-01, horizon 12) into a fresh
warehouse, once per ``--seeds-from`` value (``--seed``), and reads:

1. ``rolling_metrics`` at h = 1, 3, 6, 12: RMSE, theil_u2, coverage of the 80 % and 95 %
   bands (built from earlier errors only), the share of actuals below the 95 % band, the
   95 % interval score and width;
2. ``champions``: the champion per horizon, for each seed;
3. the wall time of each run.

The coverage targets of the issue are checked and printed as met or missed. Writes
``benchmarks/results/rolling.json`` and ``rolling.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import DATA, RESULTS, describe, where_ran, write_results
from sp500_cli import clean_env, timed_sp500

from warehouse.store import query

SHOWN = (1, 3, 6, 12)
TARGETS = {"coverage_80": (0.77, 0.83), "coverage_95": (0.93, 0.97), "below_95": (0.0, 0.035)}


def rows_of(warehouse: Path, sql: str) -> list[dict[str, object]]:
    """The rows of ``sql`` as dicts."""
    columns, rows = query(warehouse, sql)
    return [dict(zip(columns, r, strict=True)) for r in rows]


def read_results(warehouse: Path) -> dict[str, object]:
    """Rolling metrics (with the share below the 95 % band) and champions of the run."""
    metrics = rows_of(
        warehouse,
        "SELECT m.model, m.horizon, m.n, m.rmse, m.theil_u2, m.coverage_80, m.coverage_95,"
        " m.interval_score_95, m.width_95, b.below_95, b.banded"
        " FROM rolling_metrics m JOIN ("
        "   SELECT run_id, model, horizon, count(*) AS banded,"
        "     avg((actual < lower_95)::INTEGER) AS below_95"
        "   FROM rolling_predictions WHERE lower_95 IS NOT NULL GROUP BY ALL"
        " ) b USING (run_id, model, horizon)"
        " WHERE m.run_id = (SELECT any_value(run_id) FROM champions)"
        " ORDER BY m.horizon, m.rmse",
    )
    champions = rows_of(warehouse, "SELECT horizon, model, rmse, dm_pvalue FROM champions")
    span = rows_of(
        warehouse,
        "SELECT min(forecast_month)::VARCHAR AS first, max(target_month)::VARCHAR AS last,"
        " count(DISTINCT origin_month) AS origins FROM rolling_predictions"
        " WHERE run_id = (SELECT any_value(run_id) FROM champions)",
    )[0]
    return {"metrics": metrics, "champions": champions, "span": span}


def check(metrics: list[dict[str, object]]) -> list[str]:
    """The coverage targets at h = 1, 3, 6, 12 that a model misses, one line each."""
    missed = []
    for row in metrics:
        if row["horizon"] not in SHOWN:
            continue
        for key, (low, high) in TARGETS.items():
            value = float(row[key])  # type: ignore[arg-type]
            if not low <= value <= high:
                missed.append(
                    f"{row['model']} h={row['horizon']}: {key} {value:.3f} outside {low}-{high}"
                )
    return missed


def main() -> None:
    """Run, read and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds-from", type=int, nargs="+", default=[42])
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep each run's warehouse in this directory"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite rolling.md from the stored rolling.json, running nothing",
    )
    args = parser.parse_args()
    if args.render_only:
        stored = json.loads((RESULTS / "rolling.json").read_text())
        render(stored["meta"], {int(k): v for k, v in stored["runs"].items()})
        return
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds_from:
            warehouse = (args.keep or Path(tmp)) / f"seed{seed}.duckdb"
            warehouse.parent.mkdir(parents=True, exist_ok=True)
            warehouse.unlink(missing_ok=True)
            cmd = ["run", "--source", str(args.data), "--warehouse", str(warehouse)]
            wall, _ = timed_sp500([*cmd, "--seed", str(seed)], clean_env())
            runs[seed] = {"seconds": wall, **read_results(warehouse)}
            print(f"seed {seed}: {wall:.1f} s", flush=True)
    render({**where_ran(), "seeds_from": args.seeds_from}, runs)


def render(meta: dict[str, object], runs: dict[int, dict[str, object]]) -> None:
    """Write rolling.json and rolling.md: the first seed's table, every seed's checks."""
    seeds = list(runs)
    first = runs[seeds[0]]
    lines = [
        f"Rolling-origin evaluation of `sp500 run` (defaults: refit every 12 months from"
        f" 1975-01, horizon 12), real data ({describe(meta)}). Forecasts made"
        f" {first['span']['first'][:7]} … ; {first['span']['origins']} origins; one member"
        f" per origin and network (seed {seeds[0]}).",
        "",
        "| h | model | n | RMSE | theil_u2 | cover 80 | cover 95 | below 95 | IS 95 | width 95 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in first["metrics"]:
        if r["horizon"] in SHOWN:
            lines.append(
                f"| {r['horizon']} | {r['model']} | {r['n']} | {r['rmse']:.1f} |"
                f" {r['theil_u2']:.3f} | {r['coverage_80']:.3f} | {r['coverage_95']:.3f} |"
                f" {r['below_95']:.3f} | {r['interval_score_95']:.1f} | {r['width_95']:.3f} |"
            )
    lines += ["", "Champion per horizon (lowest rolling RMSE among theil_u2 < 1):", ""]
    lines += ["| seed | " + " | ".join(f"h={h}" for h in range(1, 13)) + " | run s |"]
    lines += ["|---" * 14 + "|"]
    for seed, result in runs.items():
        names = {c["horizon"]: c["model"] for c in result["champions"]}
        cells = " | ".join(str(names.get(h, "-")) for h in range(1, 13))
        lines.append(f"| {seed} | {cells} | {result['seconds']:.0f} |")
    for seed, result in runs.items():
        missed = check(result["metrics"])  # type: ignore[arg-type]
        lines += [
            "",
            f"Coverage targets with seed {seed} (80 %: 0.77-0.83, 95 %: 0.93-0.97, below 95 %"
            " ≤ 0.035, every model at h = 1, 3, 6, 12): "
            + ("all met." if not missed else f"{len(missed)} missed:"),
            *[f"- {m}" for m in missed],
        ]
    write_results("rolling", {"meta": meta, "runs": runs}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
