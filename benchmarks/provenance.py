"""Where a benchmark ran: commit, library versions and machine, for every results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sp500_monthly.csv"  # the real series, never copied
RESULTS = ROOT / "benchmarks" / "results"
PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "prefect", "duckdb", "numpy")


def git_commit() -> str:
    """The checkout's commit, with ``+dirty`` when tracked files differ from it.

    The results files themselves do not count: ``make bench`` rewrites them script by
    script, and a later script still runs the commit's code.
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                *("git", "status", "--porcelain", "--untracked-files=no", "--", "."),
                ":(exclude)benchmarks/results",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def versions() -> dict[str, str]:
    """Installed versions of Python and the libraries that decide speed and results."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def where_ran() -> dict[str, object]:
    """The ``meta`` block every results file starts with."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "versions": versions(),
    }


def describe(meta: dict[str, object]) -> str:
    """One line for a markdown results file."""
    libs = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())  # type: ignore[union-attr]
    commit = str(meta["commit"])
    short = commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")
    return f"{meta['date']}, commit {short}, {meta['machine']}; {libs}"


def write_results(
    name: str, payload: dict[str, object], text: str, default: object = float
) -> None:
    """Write ``results/{name}.json`` (``payload``) and ``results/{name}.md`` (``text``); print it.

    ``default`` turns what JSON cannot hold (NumPy scalars, timestamps) into something it can.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=default))
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


def real_windows(path: Path = DATA, window: int = 12):
    """The real series' windows, as the pipeline makes them (imports pandas and the project)."""
    import pandas as pd

    from tasks.data.windows import make_windows

    frame = pd.read_csv(path)
    return make_windows(frame["close"].to_numpy(), pd.DatetimeIndex(frame["date"]), window)
