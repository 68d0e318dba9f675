"""Set-up and start-up: ``make install`` on a fresh clone from empty caches, and CLI latency.

1. ``git clone`` of this checkout into a temporary folder, then ``make install`` there with
   an empty uv cache and pip cache and no ``uv`` on PATH (so the Makefile's bootstrap venv
   is part of the time). With ``--pip``, the same clone is also set up the old way
   (``python3 -m venv`` + ``pip install -e '.[dev]'``, no pip cache), in alternating order.
2. ``sp500 --help`` and ``sp500 query "select 1"`` against a migrated warehouse, ``--repeat``
   alternating rounds each; medians.

Writes ``benchmarks/results/startup.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import ROOT, describe, where_ran, write_results


def without_uv_on_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` whose PATH has no folder that holds a ``uv`` executable."""
    folders = [p for p in env.get("PATH", "").split(os.pathsep) if not (Path(p) / "uv").exists()]
    return {**env, "PATH": os.pathsep.join(folders)}


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one command, which must succeed."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def fresh_install(tmp: Path, how: str) -> float:
    """Seconds to build ``.venv`` in a new clone from empty caches, the ``how`` way."""
    clone = tmp / f"clone-{how}-{time.monotonic_ns()}"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    caches = tmp / f"caches-{clone.name}"
    env = without_uv_on_path(
        {
            **os.environ,
            "UV_CACHE_DIR": str(caches / "uv"),
            "PIP_CACHE_DIR": str(caches / "pip"),
            "PIP_NO_CACHE_DIR": "1",
        }
    )
    try:
        if how == "make":
            return timed(["make", "install"], clone, env)
        venv = clone / ".venv"
        return timed([sys.executable, "-m", "venv", str(venv)], clone, env) + timed(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-e", ".[dev]"],
            clone,
            env,
        )
    finally:
        shutil.rmtree(clone, ignore_errors=True)
        shutil.rmtree(caches, ignore_errors=True)


def cli_latency(tmp: Path, repeat: int) -> dict[str, list[float]]:
    """Wall seconds of ``sp500 --help`` and ``sp500 query "select 1"``, alternating."""
    from warehouse.store import migrate

    warehouse = tmp / "w.duckdb"
    migrate(warehouse)
    sp500 = str(Path(sys.executable).with_name("sp500"))
    commands = {
        "sp500 --help": [sp500, "--help"],
        'sp500 query "select 1"': [sp500, "query", "select 1", "--warehouse", str(warehouse)],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, cmd in commands.items():
            seconds[name].append(timed(cmd, tmp, dict(os.environ)))
    return seconds


def main() -> None:
    """Measure and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="CLI rounds (default 5)")
    parser.add_argument("--installs", type=int, default=1, help="fresh installs per way")
    parser.add_argument("--pip", action="store_true", help="also time the pip set-up")
    args = parser.parse_args()
    ways = ["make", "pip"] if args.pip else ["make"]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        installs: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.installs):
            for way in ways:
                installs[way].append(fresh_install(tmp, way))
                print(f"{way}: {installs[way][-1]:.1f} s", flush=True)
        cli = cli_latency(tmp, args.repeat)
    meta = {**where_ran(), "repeat": args.repeat, "installs": args.installs}
    medians = {k: statistics.median(v) for k, v in {**installs, **cli}.items()}
    lines = [
        f"Set-up from nothing and CLI start-up ({describe(meta)}).",
        "",
        "| what | seconds per round | median s |",
        "|---|---|---:|",
    ]
    labels = {
        "make": "`make install`, fresh clone, empty uv and pip caches, no uv on PATH",
        "pip": "`python3 -m venv` + `pip install -e '.[dev]'`, same clone, no pip cache",
    }
    for key, values in {**installs, **cli}.items():
        rounds = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {labels.get(key, f'`{key}`')} | {rounds} | {medians[key]:.2f} |")
    if "pip" in medians:
        lines += ["", f"pip / make install: {medians['pip'] / medians['make']:.1f}x."]
    payload = {"meta": meta, "installs": installs, "cli": cli, "medians": medians}
    write_results("startup", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
