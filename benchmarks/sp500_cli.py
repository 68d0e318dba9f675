"""Running the ``sp500`` CLI from a benchmark: a clean environment and a timed call."""

from __future__ import annotations

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
