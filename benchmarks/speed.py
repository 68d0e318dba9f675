"""Speed and memory benchmark: bare Keras script vs ``sp500 run --force`` end to end.

The bare script runs twice per round: plain Keras (one compiled call per batch) and
compiled as the pipeline compiles (one call per epoch). ``sp500 run`` runs twice too: on
its own, with Prefect's temporary API server, and against a ``prefect server start``
already running (the scheduled set-up). Each command is run ``--repeat`` times
(alternating) on the real data; min and median wall time, peak RSS of the largest
process (the long-running server is not counted), and the pipeline's time by phase read
from its log.
Writes ``benchmarks/results/speed.json`` and ``speed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import describe, where_ran
from sp500_cli import clean_env

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sp500_monthly.csv"
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent
STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) \| \w+\s*\| (.*)$")
MEASURE = (
    "import resource, subprocess, sys, time; lt = time.localtime();"
    " sod = lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + time.time() % 1;"
    " t = time.perf_counter();"
    " r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
    " sys.stdout.write(r.stdout + r.stderr);"
    " print('@@', r.returncode, time.perf_counter() - t,"
    " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, sod)"
)


def measure(command: list[str], env: dict[str, str]) -> tuple[str, float, float, float]:
    """Run a command; return its output, wall seconds, peak RSS MB, start (second of day)."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    *lines, tail = out.rstrip().splitlines()
    _, code, seconds, rss_kb, started = tail.split()
    if code != "0":
        raise SystemExit(f"error: {command[0]} failed:\n" + "\n".join(lines[-20:]))
    return "\n".join(lines), float(seconds), int(rss_kb) / 1024, float(started)


def last_json(output: str) -> dict[str, object]:
    """The bare script's result: its last JSON line (TensorFlow's notices may follow it)."""
    return json.loads(next(line for line in reversed(output.splitlines()) if line[:1] == "{"))


def leaderboard(output: str) -> dict[str, float]:
    """Test RMSE per model from the leaderboard that ``sp500 run`` prints."""
    return {m[1]: float(m[2]) for m in re.finditer(r"^\d+\s+(\w+)\s+([\d.]+)", output, re.M)}


@contextmanager
def prefect_server(work: Path) -> Iterator[str]:
    """A ``prefect server start`` on 127.0.0.1 with its own home; yields its API URL."""
    port = free_port()
    env = clean_env(
        PREFECT_HOME=str(work / "prefect-server"), PREFECT_SERVER_ANALYTICS_ENABLED="false"
    )
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with (work / "prefect-server.log").open("w") as log:
        server = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        api = f"http://127.0.0.1:{port}/api"
        try:
            deadline = time.monotonic() + 180
            while not _healthy(api):
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"error: prefect server did not start; see {log.name}")
                time.sleep(0.5)
            yield api
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def phases(log: str, wall: float, launched: float) -> dict[str, float]:
    """Seconds per phase of one ``sp500 run``, from its timestamped log lines."""
    events = []
    for line in log.splitlines():
        if m := STAMP.match(line):
            events.append((int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]), m[4]))

    def at(text: str, last: bool = False) -> float:
        hits = [t for t, msg in events if text in msg]
        return hits[-1] if last else hits[0]

    start = at("Starting temporary server")
    flow = at("Beginning flow run")
    download = at("fetch_prices", last=True)  # download and validation, source by source
    validate = at("find_revisions", last=True)
    window = at("fit_scaler", last=True)
    fits = {
        msg.split()[2]: float(re.search(r"fitted in ([\d.]+) s", msg)[1])
        for _, msg in events
        if "fitted in" in msg
    }
    write_start = at("writing run")
    written = at("write_run", last=True)
    done = at("Finished in state Completed()", last=True)
    stop = at("Stopping temporary server")
    result = {
        "process start + imports (Python, TensorFlow, Prefect)": start - launched,
        "Prefect temporary server start-up": flow - start,
        "flow start → download done": download - flow,
        "validate": validate - download,
        "window + split + scale": window - validate,
    }
    result |= {f"fit {name}": seconds for name, seconds in fits.items()}
    result["evaluate + forecast + task overhead"] = (write_start - window) - sum(fits.values())
    result["write (one DuckDB transaction)"] = written - write_start
    result["report PNG + artifacts + flow end"] = done - written
    result["server shutdown + exit"] = wall - (stop - launched) + (stop - done)
    return result


def main() -> None:
    """Run the four commands alternately and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"error: real data not found at {args.data}")
    work = Path(tempfile.mkdtemp(prefix="sp500-speed-"))
    env = clean_env(
        PREFECT_HOME=str(work / "prefect"),
        SP500_WAREHOUSE=str(work / "w.duckdb"),
        SP500_SOURCE=str(args.data),
    )
    # warm-ups, not timed: create Prefect's databases and the warehouse
    measure([str(BIN / "sp500"), "run", "--models", "naive"], env)
    bare, bare_epoch, pipeline, served = [], [], [], []
    script = [sys.executable, str(ROOT / "benchmarks" / "bare_keras.py"), str(args.data)]
    sp500 = [str(BIN / "sp500"), "run", "--force", "--models", "simple_rnn,gru,lstm,conv1d_lstm"]
    with prefect_server(work) as api_url:
        served_env = env | {"PREFECT_API_URL": api_url}
        measure([str(BIN / "sp500"), "run", "--models", "naive"], served_env)
        for i in range(args.repeat):
            for runs, command in ((bare, script), (bare_epoch, [*script, "--one-call-per-epoch"])):
                out, wall, rss, _ = measure(command, env)
                runs.append({"wall": wall, "rss_mb": rss, **last_json(out)})
            out, wall, rss, launched = measure(sp500, env)
            phase_seconds = phases(out, wall, launched)
            pipeline.append(
                {"wall": wall, "rss_mb": rss, "rmse": leaderboard(out), "phases": phase_seconds}
            )
            out, wall, rss, _ = measure(sp500, served_env)
            served.append({"wall": wall, "rss_mb": rss, "rmse": leaderboard(out)})
            print(
                f"round {i + 1}: bare {bare[-1]['wall']:.1f} s, bare one call per epoch"
                f" {bare_epoch[-1]['wall']:.1f} s, pipeline {pipeline[-1]['wall']:.1f} s,"
                f" pipeline with a running server {wall:.1f} s",
                flush=True,
            )
    commands = {"bare": bare, "bare_epoch": bare_epoch, "pipeline": pipeline, "served": served}
    walls = {name: [r["wall"] for r in runs] for name, runs in commands.items()}
    best = min(range(len(pipeline)), key=lambda i: walls["pipeline"][i])
    medians = {name: statistics.median(w) for name, w in walls.items()}
    summary = {
        **{f"{name}_min": min(w) for name, w in walls.items()},
        **{f"{name}_median": medians[name] for name in walls},
        "ratio_median": medians["pipeline"] / medians["bare"],
        "ratio_epoch_median": medians["pipeline"] / medians["bare_epoch"],
        "ratio_served_median": medians["served"] / medians["bare"],
        "ratio_served_epoch_median": medians["served"] / medians["bare_epoch"],
        **{f"{name}_rss_mb": max(r["rss_mb"] for r in runs) for name, runs in commands.items()},
        # same seeds, one compiled call per epoch instead of per batch: largest RMSE change
        "max_rmse_change_pct": max(
            abs(e["rmse"][m] / b["rmse"][m] - 1) * 100
            for b, e in zip(bare, bare_epoch, strict=True)
            for m in b["rmse"]
        ),
        "pipeline_rmse": pipeline[0]["rmse"],
        "same_rmse_every_pipeline_run": all(
            r["rmse"] == pipeline[0]["rmse"] for r in pipeline + served
        ),
        "phases_of_fastest_pipeline_run": pipeline[best]["phases"],
    }
    meta = {**where_ran(), "repeat": args.repeat}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "speed.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "bare": bare,
                "bare_one_call_per_epoch": bare_epoch,
                "pipeline": pipeline,
                "pipeline_with_running_server": served,
                "summary": summary,
            },
            indent=2,
        )
    )
    lines = [
        f"Speed, {meta['repeat']} alternating rounds ({describe(meta)}); "
        "4 Keras models, 60 epochs, real data.",
        "",
        "| command | min s | median s | peak RSS MB (largest process) |",
        "|---|---:|---:|---:|",
        f"| (1) bare Keras script, plain `compile` | {summary['bare_min']:.1f} "
        f"| {summary['bare_median']:.1f} | {summary['bare_rss_mb']:.0f} |",
        f"| (1b) bare Keras script, one compiled call per epoch | {summary['bare_epoch_min']:.1f} "
        f"| {summary['bare_epoch_median']:.1f} | {summary['bare_epoch_rss_mb']:.0f} |",
        f"| (2) `sp500 run --force` (temporary Prefect server) | {summary['pipeline_min']:.1f} "
        f"| {summary['pipeline_median']:.1f} | {summary['pipeline_rss_mb']:.0f} |",
        f"| (2s) `sp500 run --force` with a running `prefect server start` "
        f"| {summary['served_min']:.1f} | {summary['served_median']:.1f} "
        f"| {summary['served_rss_mb']:.0f} |",
        f"| ratio (2) / (1), medians | | {summary['ratio_median']:.2f} | |",
        f"| ratio (2) / (1b), medians | | {summary['ratio_epoch_median']:.2f} | |",
        f"| ratio (2s) / (1), medians | | {summary['ratio_served_median']:.2f} | |",
        f"| ratio (2s) / (1b), medians | | {summary['ratio_served_epoch_median']:.2f} | |",
        "",
        "Largest test-RMSE change of (1b) against (1), same seeds: "
        f"{summary['max_rmse_change_pct']:.3f} %. Test RMSE of every pipeline run: "
        + ", ".join(f"{m} {v:.1f}" for m, v in summary["pipeline_rmse"].items())
        + (
            " (identical in all runs)."
            if summary["same_rmse_every_pipeline_run"]
            else " (first run; the runs differ, see speed.json)."
        ),
        "",
        "| phase of (2), fastest run | seconds |",
        "|---|---:|",
        *[f"| {k} | {v:.1f} |" for k, v in summary["phases_of_fastest_pipeline_run"].items()],
    ]
    (RESULTS / "speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
