"""Where a benchmark ran: commit, library versions and machine, for every results file."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "prefect", "duckdb", "numpy")


def git_commit() -> str:
    """The checkout's commit, with ``+dirty`` when tracked files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
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
