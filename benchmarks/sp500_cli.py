"""Running the ``sp500`` CLI and the plain-Keras baseline from a benchmark: timed calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

SP500 = Path(sys.executable).with_name("sp500")


def clean_env(**updates: str) -> dict[str, str]:
    """This process's environment without its PREFECT_* and SP500_* settings, plus ``updates``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SP500_"))}
    return env | updates


def timed_sp500(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall seconds and the finished process of ``sp500 *args``; exit with its error on failure."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(SP500), *args], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"error: sp500 {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return wall, done


# Runs a command in a child of a fresh interpreter, so that RUSAGE_CHILDREN is that
# command's alone: its peak RSS is the largest process of its tree.
_MEASURE = (
    "import resource, subprocess, sys, time; t = time.perf_counter();"
    " r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
    " sys.stdout.write(r.stdout + r.stderr);"
    " print('@@', r.returncode, time.perf_counter() - t,"
    " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def measured(command: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """Output, wall seconds and peak RSS (MB, largest process) of ``command``; exit on failure."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    *lines, tail = out.rstrip().splitlines()
    _, code, seconds, rss_kb = tail.split()
    if code != "0":
        raise SystemExit(f"error: {' '.join(command)} failed:\n" + "\n".join(lines[-20:]))
    return "\n".join(lines), float(seconds), int(rss_kb) / 1024


def bare_keras(data: Path, env: dict[str, str]) -> tuple[float, float, dict[str, object]]:
    """Wall seconds, peak RSS MB and result of the lesson's four networks fitted by plain Keras."""
    script = Path(__file__).with_name("bare_keras.py")
    out, wall, rss = measured([sys.executable, str(script), str(data)], env)
    result = json.loads(next(line for line in reversed(out.splitlines()) if line[:1] == "{"))
    return wall, rss, result


def rows_of(warehouse: Path, sql: str) -> list[dict[str, object]]:
    """The rows of ``sql`` in the warehouse a run left, as dicts (read-only)."""
    from warehouse.store import query  # only the scripts that read a warehouse need DuckDB

    columns, rows = query(warehouse, sql)
    return [dict(zip(columns, r, strict=True)) for r in rows]
