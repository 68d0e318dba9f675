"""The rolling-origin evaluation of a default ``sp500 run`` on the real data: bands, verdicts.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/rolling.py``). Runs ``sp500 run``
with default settings (refit every 12 months from 1975-01, horizon 12) into a fresh
warehouse, once per ``--seeds-from`` value (``--seed``), and reads:

1. ``rolling_metrics`` at h = 1, 3, 6, 12: RMSE, coverage of the 80 % and 95 % bands with
   their 90 % block-bootstrap intervals, the shares of actuals below and above the 95 %
   band (with intervals computed here the same way), the interval scores and width;
2. ``champions``: the verdict per horizon, for each seed;
3. the live forecasts: every model's 95 % band against the index's worst and best h-month
   moves since 1950, and whether each side's distance from the point grows with h;
4. the wall time of each run.

The issue's calibration, believability and stability targets are checked and printed as
met or missed. Writes ``benchmarks/results/rolling.json`` and ``rolling.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import DATA, RESULTS, describe, where_ran, write_results
from sp500_cli import clean_env, rows_of, timed_sp500

from tasks.evaluation.calibrate import coverage_intervals

SHOWN = (1, 3, 6, 12)
NOMINAL = {"coverage_80": 0.80, "coverage_95": 0.95, "below_95": 0.025, "above_95": 0.025}
LATEST = "(SELECT any_value(run_id) FROM champions)"


def shares(banded: list[dict[str, object]], model: str, horizon: int) -> dict[str, float]:
    """Shares below and above the 95 % band, with 90 % block-bootstrap intervals.

    ``banded``: every banded rolling forecast, ``model, horizon, below, above``, in month order.
    """
    hits = np.array(
        [
            [r["below"], r["above"]]
            for r in banded
            if (r["model"], r["horizon"]) == (model, horizon)
        ],
        dtype=np.float64,
    )
    low, high = coverage_intervals(hits, horizon)
    out = {}
    for k, name in enumerate(("below_95", "above_95")):
        out[name] = float(hits[:, k].mean())
        out[f"{name}_low"], out[f"{name}_high"] = float(low[k]), float(high[k])
    return out


def live_checks(warehouse: Path) -> list[dict[str, object]]:
    """Per model and horizon: the live 95 % band and the index's extreme h-month moves."""
    closes = [
        float(r["close"])
        for r in rows_of(
            warehouse,
            "SELECT p.close FROM prices p JOIN runs r USING (snapshot_id)"
            f" WHERE r.run_id = {LATEST} ORDER BY p.month",
        )
    ]
    close = np.array(closes)
    live = rows_of(
        warehouse,
        "SELECT model, horizon, point, lower_80, upper_80, lower_95, upper_95 FROM forecasts"
        f" WHERE run_id = {LATEST} ORDER BY model, horizon",
    )
    for row in live:
        h = int(row["horizon"])  # type: ignore[arg-type]
        moves = close[h:] / close[:-h] - 1.0
        row["floor"] = close[-1] * (1 + moves.min())
        row["ceiling"] = close[-1] * (1 + moves.max())
    return live


def read_results(warehouse: Path) -> dict[str, object]:
    """Rolling metrics (with the shares outside the 95 % band), champions, live bands."""
    metrics = rows_of(
        warehouse,
        "SELECT model, horizon, n, rmse, theil_u2, coverage_80, coverage_80_low,"
        " coverage_80_high, coverage_95, coverage_95_low, coverage_95_high, interval_score_80,"
        f" interval_score_95, width_95 FROM rolling_metrics WHERE run_id = {LATEST}"
        " ORDER BY horizon, rmse",
    )
    banded = rows_of(
        warehouse,
        "SELECT model, horizon, actual < lower_95 AS below, actual > upper_95 AS above"
        f" FROM rolling_predictions WHERE run_id = {LATEST} AND lower_95 IS NOT NULL"
        " ORDER BY model, horizon, forecast_month",
    )
    for row in metrics:
        if row["horizon"] in SHOWN:
            row.update(shares(banded, str(row["model"]), int(row["horizon"])))  # type: ignore[arg-type]
    champions = rows_of(
        warehouse,
        "SELECT horizon, model, rmse, dm_pvalue, best_model, kept, dm_pvalue_vs_best"
        " FROM champions",
    )
    span = rows_of(
        warehouse,
        "SELECT min(forecast_month)::VARCHAR AS first, max(target_month)::VARCHAR AS last,"
        " count(DISTINCT origin_month) AS origins FROM rolling_predictions"
        f" WHERE run_id = {LATEST}",
    )[0]
    return {
        "metrics": metrics,
        "champions": champions,
        "span": span,
        "live": live_checks(warehouse),
    }


def check(metrics: list[dict[str, object]]) -> list[str]:
    """The calibration targets at h = 1, 3, 6, 12 that a model misses, one line each."""
    missed = []
    for row in metrics:
        h = int(row["horizon"])  # type: ignore[arg-type]
        if h not in SHOWN:
            continue
        for name, nominal in NOMINAL.items():
            low, high = float(row[f"{name}_low"]), float(row[f"{name}_high"])  # type: ignore[arg-type]
            if not low <= nominal <= high:
                missed.append(
                    f"{row['model']} h={h}: {name} {float(row[name]):.3f}"  # type: ignore[arg-type]
                    f" ({low:.3f}-{high:.3f}) misses {nominal}"
                )
        floor = 0.90 if h == 12 else 0.92
        if float(row["coverage_95"]) < floor:  # type: ignore[arg-type]
            missed.append(f"{row['model']} h={h}: coverage_95 {row['coverage_95']:.3f} < {floor}")
    return missed


def check_live(live: list[dict[str, object]]) -> list[str]:
    """Live bands beyond the index's own moves, or narrowing with h, one line each."""
    missed = []
    by_model: dict[str, list[dict[str, object]]] = {}
    for row in live:
        by_model.setdefault(str(row["model"]), []).append(row)
        if not float(row["floor"]) <= float(row["lower_95"]) + 1e-6:  # type: ignore[arg-type]
            missed.append(f"{row['model']} h={row['horizon']}: lower_95 below the worst move")
        if not float(row["upper_95"]) <= float(row["ceiling"]) + 1e-6:  # type: ignore[arg-type]
            missed.append(f"{row['model']} h={row['horizon']}: upper_95 above the best move")
    for model, path in by_model.items():
        for side, sign in (("lower", -1.0), ("upper", 1.0)):
            for pct in (80, 95):
                distance = [
                    sign * np.log(float(r[f"{side}_{pct}"]) / float(r["point"]))  # type: ignore[arg-type]
                    for r in sorted(path, key=lambda r: int(r["horizon"]))  # type: ignore[arg-type]
                ]
                if np.any(np.diff(distance) < -1e-12):
                    missed.append(f"{model}: {side}_{pct} narrows with h")
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


README_TITLE = "README table (the first seed; README.md copies it to the digit):"


def readme_table(run: dict[str, object]) -> list[str]:
    """Every model at h = 1 and 12 and where it is champion: the table README.md shows."""
    metrics = {(m["model"], m["horizon"]): m for m in run["metrics"]}  # type: ignore[attr-defined]
    champion_at: dict[str, list[int]] = {}
    for c in run["champions"]:  # type: ignore[attr-defined]
        champion_at.setdefault(c["model"], []).append(int(c["horizon"]))
    models = sorted({m for m, _ in metrics}, key=lambda m: metrics[(m, 12)]["rmse"])
    lines = [
        README_TITLE,
        "",
        "| model | RMSE h = 1 | RMSE h = 12 | 95 % band covers, h = 12 (90 % interval)"
        " | interval score 95 %, h = 12 | champion at h |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for model in models:
        one, twelve = metrics[(model, 1)], metrics[(model, 12)]
        hs = sorted(champion_at.get(model, []))
        where = (
            "-"
            if not hs
            else (
                f"{hs[0]}-{hs[-1]}"
                if hs == list(range(hs[0], hs[-1] + 1))
                else ", ".join(map(str, hs))
            )
        )
        lines.append(
            f"| {model} | {one['rmse']:.1f} | {twelve['rmse']:.1f} |"
            f" {twelve['coverage_95'] * 100:.1f} % ({twelve['coverage_95_low'] * 100:.1f}"
            f"-{twelve['coverage_95_high'] * 100:.1f}) | {twelve['interval_score_95']:,.0f} |"
            f" {where} |"
        )
    return lines


def render(meta: dict[str, object], runs: dict[int, dict[str, object]]) -> None:
    """Write rolling.json and rolling.md: the first seed's table, every seed's checks."""
    seeds = list(runs)
    first = runs[seeds[0]]
    lines = [
        f"Rolling-origin evaluation of `sp500 run` (defaults: refit every 12 months from"
        f" 1975-01, horizon 12), real data ({describe(meta)}). Forecasts made"
        f" {first['span']['first'][:7]} … ; {first['span']['origins']} origins; one member"
        f" per origin and network (seed {seeds[0]}). Shares with their 90 % block-bootstrap"
        " interval.",
        "",
        "| h | model | n | RMSE | cover 80 | cover 95 | below 95 | above 95 | IS 80 | IS 95 |"
        " width 95 |",
        "|---:|---|---:|---:|---|---|---|---|---:|---:|---:|",
    ]

    def share(r: dict[str, object], name: str) -> str:
        return f"{r[name]:.3f} ({r[f'{name}_low']:.3f}-{r[f'{name}_high']:.3f})"

    for r in first["metrics"]:
        if r["horizon"] in SHOWN:
            lines.append(
                f"| {r['horizon']} | {r['model']} | {r['n']} | {r['rmse']:.1f} |"
                f" {share(r, 'coverage_80')} | {share(r, 'coverage_95')} |"
                f" {share(r, 'below_95')} | {share(r, 'above_95')} |"
                f" {r['interval_score_80']:.1f} | {r['interval_score_95']:.1f} |"
                f" {r['width_95']:.3f} |"
            )
    lines += ["", *readme_table(first)]
    lines += [
        "",
        "Champion per horizon (the model with the fewest parameters among those not"
        " significantly worse than the lowest-RMSE model, one-sided DM at 10 %); best model"
        " in brackets where it differs:",
        "",
    ]
    lines += ["| seed | " + " | ".join(f"h={h}" for h in range(1, 13)) + " | run s |"]
    lines += ["|---" * 14 + "|"]
    for seed, result in runs.items():
        cells = []
        for h in range(1, 13):
            c = next((c for c in result["champions"] if c["horizon"] == h), None)
            if c is None:
                cells.append("-")
            else:
                best = c.get("best_model")
                cells.append(c["model"] + (f" ({best})" if best and best != c["model"] else ""))
        lines.append(f"| {seed} | {' | '.join(cells)} | {result['seconds']:.0f} |")
    names = [{c["horizon"]: c["model"] for c in r["champions"]} for r in runs.values()]
    stable = all(n == names[0] for n in names[1:])
    lines += [
        "",
        f"Same champion at every horizon for seeds {', '.join(map(str, seeds))}: "
        + ("met." if stable else "**missed**."),
    ]
    drawn = [r for r in first["live"] if r["model"] == names[0].get(r["horizon"])]
    lines += [
        "",
        f"Live path of seed {seeds[0]} (each horizon's champion) against the index's own"
        " moves since 1950 (floor and ceiling: last close times one plus the worst and best"
        " h-month move):",
        "",
        "| h | model | point | 95 % band | floor … ceiling |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in sorted(drawn, key=lambda r: r["horizon"]):
        lines.append(
            f"| {r['horizon']} | {r['model']} | {r['point']:,.0f} |"
            f" {r['lower_95']:,.0f} … {r['upper_95']:,.0f} |"
            f" {r['floor']:,.0f} … {r['ceiling']:,.0f} |"
        )
    for seed, result in runs.items():
        missed = check(result["metrics"])  # type: ignore[arg-type]
        live = check_live(result["live"])  # type: ignore[arg-type]
        lines += [
            "",
            f"Calibration targets with seed {seed} (every model at h = 1, 3, 6, 12: each"
            " bootstrap interval contains its nominal value; 95 % coverage ≥ 0.92 at h ≤ 6,"
            " ≥ 0.90 at h = 12): " + ("all met." if not missed else f"{len(missed)} missed:"),
            *[f"- {m}" for m in missed],
            "",
            f"Live bands with seed {seed} (every model and horizon within the index's moves,"
            " each side's distance non-decreasing in h): "
            + ("all met." if not live else f"{len(live)} missed:"),
            *[f"- {m}" for m in live],
        ]
    write_results("rolling", {"meta": meta, "runs": runs}, "\n".join(lines) + "\n", default=str)


if __name__ == "__main__":
    main()
