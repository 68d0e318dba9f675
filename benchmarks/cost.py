"""What a default ``sp500 run`` costs against the lesson's four networks fitted once by plain Keras.

Alternating rounds on the real data: ``benchmarks/bare_keras.py`` (the lesson's four networks,
60 epochs, one fit each: numpy, pandas and Keras only), ``sp500 run --force`` with its
defaults (seven models, seed ensembles, the rolling evaluation since 1975 at twelve
horizons, bands, the warehouse, the report; the models fitted one after the other) and the
same run with ``--task-runner process`` (the models fitted side by side in worker
processes, ``--workers`` = the cores). Machines of the same kind differ by more than
2x, so the answer is the ratio of medians measured here, in the same rounds. Also the peak
RSS of each (the largest process of its tree).

Run with ``make bench`` or ``.venv/bin/python benchmarks/cost.py``. Writes
``benchmarks/results/cost.json`` and ``cost.md``. The backtest's cost against the same
baseline is in ``benchmarks/backtest.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import DATA, describe, where_ran, write_results
from sp500_cli import SP500, bare_keras, clean_env, measured


def main() -> None:
    """Run the rounds and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"error: real data not found at {args.data}")
    bare: list[dict[str, object]] = []
    runs: list[dict[str, object]] = []
    side: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = clean_env(
            PREFECT_HOME=str(Path(tmp) / "prefect"),
            SP500_WAREHOUSE=str(Path(tmp) / "w.duckdb"),
            SP500_SOURCE=str(args.data),
        )
        run = [str(SP500), "run", "--force"]
        measured([str(SP500), "run", "--models", "naive"], env)  # warm-up: Prefect's database
        for i in range(args.repeat):
            wall, rss, result = bare_keras(args.data, env)
            bare.append({"wall": wall, "rss_mb": rss, "rmse": result["rmse"]})
            _, wall, rss = measured(run, env)
            runs.append({"wall": wall, "rss_mb": rss})
            _, wall, rss = measured([*run, "--task-runner", "process"], env)
            side.append({"wall": wall, "rss_mb": rss})
            print(
                f"round {i + 1}: plain Keras {bare[-1]['wall']:.1f} s,"
                f" run {runs[-1]['wall']:.1f} s, side by side {wall:.1f} s"
            )
    bare_median = statistics.median(r["wall"] for r in bare)  # type: ignore[misc]
    run_median = statistics.median(r["wall"] for r in runs)  # type: ignore[misc]
    side_median = statistics.median(r["wall"] for r in side)  # type: ignore[misc]
    summary = {
        "bare_median_seconds": bare_median,
        "run_median_seconds": run_median,
        "side_by_side_median_seconds": side_median,
        "ratio_of_medians": run_median / bare_median,
        "side_by_side_over_run": side_median / run_median,
        "bare_peak_rss_mb": max(r["rss_mb"] for r in bare),  # type: ignore[type-var]
        "run_peak_rss_mb": max(r["rss_mb"] for r in runs),  # type: ignore[type-var]
        "side_by_side_peak_rss_mb": max(r["rss_mb"] for r in side),  # type: ignore[type-var]
    }
    meta = {**where_ran(), "repeat": args.repeat}

    def walls(rows: list[dict[str, object]]) -> str:
        return ", ".join(f"{r['wall']:.1f}" for r in rows)

    text = "\n".join(
        [
            f"Cost of a default `sp500 run --force` against the lesson's four networks fitted"
            f" once by plain Keras (`benchmarks/bare_keras.py`), {args.repeat} alternating"
            f" rounds on the real data ({describe(meta)}).",
            "",
            "| command | wall s per round | median s | peak RSS MB |",
            "|---|---|---:|---:|",
            f"| plain Keras, four networks, one fit each | {walls(bare)} | {bare_median:.1f}"
            f" | {summary['bare_peak_rss_mb']:.0f} |",
            f"| `sp500 run --force` (defaults) | {walls(runs)} | {run_median:.1f}"
            f" | {summary['run_peak_rss_mb']:.0f} |",
            f"| `sp500 run --force --task-runner process` | {walls(side)} | {side_median:.1f}"
            f" | {summary['side_by_side_peak_rss_mb']:.0f} |",
            "",
            f"Ratio of medians, run / plain Keras: {summary['ratio_of_medians']:.2f};"
            f" side by side / in turn: {summary['side_by_side_over_run']:.2f}. Peak RSS is"
            " the largest process of the command's tree (a worker process, side by side).",
            "",
        ]
    )
    payload = {"meta": meta, "bare": bare, "run": runs, "side_by_side": side, "summary": summary}
    write_results("cost", payload, text)


if __name__ == "__main__":
    main()
