"""The lesson's table and its exercise, as ``sp500 run`` computes them on the real data.

1. **The lesson's table**: every default model on the lesson's split (windows of 12, the
   last 20 % of windows as the test months), read from the warehouse of a default run
   (``--warehouse``, e.g. ``benchmarks/runs/seed42.duckdb`` left by
   ``benchmarks/rolling.py --keep benchmarks/runs``; without one, a default run is made
   here). Test RMSE and MAE, the seed members' spread, parameters and the Diebold-Mariano
   p-value against naive, as the ``leaderboard`` view holds them.
2. **The lesson's exercise 3**, a wider Conv1D (filters 64, kernel 5) against the default
   conv1d_lstm and lstm: one ``sp500 run --models`` with the four specs, scored on the
   lesson's split and by the rolling evaluation at h = 1 and 12, with the run's own
   verdict (champion per horizon).
3. **The lesson's scaling**: the four networks and naive with ``--scaling minmax`` (one
   min-max range over the training prices, as the lesson scaled), on the lesson's split,
   beside the lesson's own published numbers.

Run with ``make bench`` or ``.venv/bin/python benchmarks/lesson.py``. Writes
``benchmarks/results/lesson.json`` and ``lesson.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import DATA, describe, where_ran, write_results
from sp500_cli import clean_env, rows_of, timed_sp500

EXERCISE = "naive,lstm,conv1d_lstm,conv1d_lstm[filters=64,kernel_size=5]"
MINMAX = "simple_rnn,gru,lstm,conv1d_lstm,naive"
# The lesson's published test RMSE / MAE (min-max scaling): a fixed reference, not ours.
LESSON_PUBLISHED = {
    "simple_rnn": (917.1, 578.0),
    "gru": (568.9, 377.4),
    "lstm": (423.4, 293.5),
    "conv1d_lstm": (507.0, 353.1),
}
LESSON_SQL = """
SELECT l.rank, l.model, l.rmse, l.mae, l.seeds, l.rmse_min, l.rmse_max, l.dm_pvalue,
    mo.n_params
FROM leaderboard AS l
LEFT JOIN (
    SELECT run_id, model, max(n_params) AS n_params FROM models
    WHERE role = 'evaluation' GROUP BY run_id, model
) AS mo ON mo.run_id = l.run_id AND mo.model = l.model
ORDER BY l.rank, l.model
"""
ROLLING_SQL = """
WITH latest AS (
    SELECT run_id FROM runs WHERE status = 'completed' AND kind = 'retrain'
    ORDER BY finished_at DESC, run_id DESC LIMIT 1
)
SELECT m.model, m.horizon, m.rmse, m.coverage_95, m.interval_score_95
FROM rolling_metrics AS m JOIN latest USING (run_id)
WHERE m.horizon IN (1, 12)
"""
CHAMPIONS_SQL = "SELECT horizon, model FROM champions WHERE horizon IN (1, 12) ORDER BY horizon"


def run_into(warehouse: Path, data: Path, *options: str) -> float:
    """``sp500 run`` with ``options`` into ``warehouse``; its wall seconds."""
    env = clean_env(PREFECT_HOME=str(warehouse.parent / "prefect"))
    args = ["run", "--source", str(data), "--warehouse", str(warehouse), *options]
    wall, _ = timed_sp500(args, env)
    return wall


def fmt(value: object, digits: int = 1) -> str:
    """A table cell: ``-`` for a missing value."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def lesson_table(rows: list[dict[str, object]]) -> list[str]:
    """The lesson's table in markdown."""
    lines = [
        "| rank | model | test RMSE | test MAE | members | member RMSE range"
        " | parameters per member | DM p vs naive |",
        "|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        spread = f"{r['rmse_min']:.1f}-{r['rmse_max']:.1f}" if r["rmse_min"] is not None else "-"
        lines.append(
            f"| {r['rank']} | {r['model']} | {fmt(r['rmse'])} | {fmt(r['mae'])} | {r['seeds']}"
            f" | {spread} | {fmt(r['n_params'], 0)} | {fmt(r['dm_pvalue'], 3)} |"
        )
    return lines


def exercise_table(lesson: list[dict[str, object]], rolling: list[dict[str, object]]) -> list[str]:
    """The exercise's four specs: lesson split and rolling evaluation side by side."""
    by = {(r["model"], r["horizon"]): r for r in rolling}
    lines = [
        "| model | parameters per member | test RMSE (lesson split) | DM p vs naive"
        " | rolling RMSE h = 1 | rolling RMSE h = 12 | 95 % covers, h = 12"
        " | interval score 95 %, h = 12 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in lesson:
        one, twelve = by.get((r["model"], 1), {}), by.get((r["model"], 12), {})
        cover = twelve.get("coverage_95")
        lines.append(
            f"| {r['model']} | {fmt(r['n_params'], 0)} | {fmt(r['rmse'])}"
            f" | {fmt(r['dm_pvalue'], 3)} | {fmt(one.get('rmse'))} | {fmt(twelve.get('rmse'))}"
            f" | {'-' if cover is None else f'{cover:.1%}'}"
            f" | {fmt(twelve.get('interval_score_95'), 0)} |"
        )
    return lines


def minmax_table(rows: list[dict[str, object]]) -> list[str]:
    """The min-max-scaled run beside the lesson's published numbers."""
    lines = [
        "| model | test RMSE, minmax (ours) | test MAE, minmax (ours) | RMSE / MAE, the lesson |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        published = LESSON_PUBLISHED.get(str(r["model"]))
        theirs = "-" if published is None else f"{published[0]:.1f} / {published[1]:.1f}"
        lines.append(f"| {r['model']} | {fmt(r['rmse'])} | {fmt(r['mae'])} | {theirs} |")
    return lines


def main() -> None:
    """Read (or make) the default run, run the exercise, write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--warehouse", type=Path, help="a default run's warehouse to read")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"error: real data not found at {args.data}")
    with tempfile.TemporaryDirectory() as tmp:
        default = args.warehouse
        if default is None:
            default = Path(tmp) / "default" / "w.duckdb"
            default.parent.mkdir()
            run_into(default, args.data, "--seed", str(args.seed))
        elif not default.is_file():
            sys.exit(f"error: no warehouse at {default}")
        lesson = rows_of(default, LESSON_SQL)
        exercise_warehouse = Path(tmp) / "exercise" / "w.duckdb"
        exercise_warehouse.parent.mkdir()
        wall = run_into(
            exercise_warehouse, args.data, "--models", EXERCISE, "--seed", str(args.seed)
        )
        exercise = rows_of(exercise_warehouse, LESSON_SQL)
        rolling = rows_of(exercise_warehouse, ROLLING_SQL)
        champions = rows_of(exercise_warehouse, CHAMPIONS_SQL)
        minmax_warehouse = Path(tmp) / "minmax" / "w.duckdb"
        minmax_warehouse.parent.mkdir()
        run_into(
            minmax_warehouse,
            args.data,
            *("--models", MINMAX, "--scaling", "minmax", "--seed", str(args.seed)),
        )
        minmax = rows_of(minmax_warehouse, LESSON_SQL)
    meta = {**where_ran(), "seed": args.seed, "exercise_models": EXERCISE}
    verdict = ", ".join(f"h = {c['horizon']}: {c['model']}" for c in champions)
    text = "\n".join(
        [
            f"The lesson's table and exercise, `sp500 run` on the real data, seed {args.seed}"
            f" ({describe(meta)}).",
            "",
            "## The lesson's table",
            "",
            "Every default model on the lesson's split (windows of 12, the last 20 % of windows"
            " as test months), from a default run's `leaderboard` view. `mean` is the average"
            " of the other six; a network is an ensemble of its seed members.",
            "",
            *lesson_table(lesson),
            "",
            "## Exercise 3: a wider Conv1D",
            "",
            f"`sp500 run --models {EXERCISE}` ({wall:.0f} s): the lesson's split and the rolling"
            " evaluation (forecasts made monthly since 1975) side by side. The run's champion"
            f" (the cheapest model not significantly worse than the best): {verdict}.",
            "",
            *exercise_table(exercise, rolling),
            "",
            "## The lesson's scaling",
            "",
            f"`sp500 run --scaling minmax --models {MINMAX}`: one min-max range over the"
            " training prices, as the lesson scaled, on the same test months.",
            "",
            *minmax_table(minmax),
            "",
        ]
    )
    payload = {
        "meta": meta,
        "minmax": minmax,
        "lesson": lesson,
        "exercise": {"wall_seconds": wall, "lesson_split": exercise, "rolling": rolling},
        "exercise_champions": champions,
    }
    write_results("lesson", payload, text)


if __name__ == "__main__":
    main()
