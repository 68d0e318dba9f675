"""A/B benchmark: ``sp500 run --force`` of an earlier commit against this checkout.

Checks the base commit out into a temporary git worktree and runs both versions' CLI
alternately, ``--repeat`` rounds, with the same venv (the base's code goes first on
``PYTHONPATH``), the same real data and a fresh warehouse each. Reports each side's wall
times, median ratio and test RMSEs. Writes ``benchmarks/results/compare_commits.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import describe, where_ran
from sp500_cli import clean_env, timed_sp500

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sp500_monthly.csv"
RESULTS = ROOT / "benchmarks" / "results"
MODELS = "simple_rnn,gru,lstm,conv1d_lstm"


def run_once(
    code: Path, work: Path, data: Path, models: str = MODELS
) -> tuple[float, dict[str, float]]:
    """Wall seconds and test RMSE per model of one ``sp500 run --force`` of ``code``.

    ``models`` ``default`` runs each version's own default models.
    """
    env = clean_env(
        PYTHONPATH=str(code),
        PREFECT_HOME=str(work / "prefect"),
        SP500_WAREHOUSE=str(work / "w.duckdb"),
        SP500_SOURCE=str(data),
    )
    chosen = [] if models == "default" else ["--models", models]
    wall, done = timed_sp500(["run", "--force", *chosen], env, cwd=work)
    board = done.stdout.split("\nChampion per horizon", 1)[0]  # the lesson's table only
    rmse = {m[1]: float(m[2]) for m in re.finditer(r"^\d+\s+(\w+)\s+([\d.]+)", board, re.M)}
    return wall, rmse


def main() -> None:
    """Run both versions alternately and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the earlier commit, e.g. 63ef6c2")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--models", default=MODELS, help="sp500 run --models; 'default': each version's defaults"
    )
    parser.add_argument(
        "--name", default="compare_commits", help="results file stem (results/NAME.json, .md)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base_code = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base_code), args.base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            sides = {"base": base_code, "head": ROOT}
            walls: dict[str, list[float]] = {name: [] for name in sides}
            rmse: dict[str, dict[str, float]] = {}
            for name, code in sides.items():  # warm-up, not timed: imports, file caches
                (Path(tmp) / f"warm-{name}").mkdir()
                run_once(code, Path(tmp) / f"warm-{name}", args.data, "naive")
            for i in range(args.repeat):
                for name, code in sides.items():
                    work = Path(tmp) / f"{name}-{i}"
                    work.mkdir()
                    wall, rmse[name] = run_once(code, work, args.data, args.models)
                    walls[name].append(wall)
                print(
                    f"round {i + 1}: base {walls['base'][-1]:.1f} s, head {walls['head'][-1]:.1f} s"
                )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base_code)], cwd=ROOT, check=False
            )
    medians = {name: statistics.median(w) for name, w in walls.items()}
    meta = {**where_ran(), "base": args.base, "repeat": args.repeat, "models": args.models}
    command = "sp500 run --force" + ("" if args.models == "default" else f" --models {args.models}")
    result = {"meta": meta, "walls": walls, "medians": medians, "rmse": rmse}
    result["ratio_head_to_base"] = medians["head"] / medians["base"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"`{command}`, base {args.base} against this checkout,"
        f" {args.repeat} alternating rounds, same venv and data ({describe(meta)}).",
        "",
        "| version | wall s per round | median s | test RMSE |",
        "|---|---|---:|---|",
    ]
    for name in ("base", "head"):
        label = args.base if name == "base" else "this checkout"
        rounds = ", ".join(f"{w:.1f}" for w in walls[name])
        scores = ", ".join(f"{m} {v:.1f}" for m, v in rmse[name].items())
        lines.append(f"| {label} | {rounds} | {medians[name]:.1f} | {scores} |")
    lines += ["", f"Median ratio, this checkout / {args.base}: {result['ratio_head_to_base']:.2f}."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
