"""SIGKILL at random moments, concurrent runs and queries: the warehouse stays whole."""

from __future__ import annotations

import json
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from tests.conftest import LocalServer, Route, duckdb_writer, synthetic_prices, to_csv_bytes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SP500 = Path(sys.executable).with_name("sp500")
RESULT_TABLES = (
    "models",
    "metrics",
    "predictions",
    "forecasts",
    "seed_metrics",
    "comparisons",
    "horizon_metrics",
    "backtest_predictions",
)


class Run:
    """An ``sp500 run`` (or other command) subprocess whose output lines are watched."""

    def __init__(self, env: dict[str, str], *args: str, command: str = "run") -> None:
        self.lines: list[str] = []
        self.events: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            [str(SP500), command, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            self.events.put(line)

    def wait_for(self, text: str, timeout: float = 120) -> bool:
        """True once a line containing ``text`` appears; False if the process ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if text in self.events.get(timeout=0.5):
                    return True
            except queue.Empty:
                if self.process.poll() is not None and self.events.empty():
                    return False
        raise AssertionError(f"no {text!r} within {timeout} s:\n{''.join(self.lines[-30:])}")

    def finish(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code


def consistency(warehouse: Path) -> dict[str, object]:
    """Check the invariants a crash must never break; return what the check saw."""
    with duckdb.connect(str(warehouse), read_only=True) as con:

        def one(sql: str, *params: object) -> tuple:
            return con.execute(sql, list(params)).fetchall()[0]

        for table in RESULT_TABLES:
            (orphans,) = one(
                f"SELECT count(*) FROM {table} WHERE run_id NOT IN "
                "(SELECT run_id FROM runs WHERE status = 'completed')"
            )
            assert orphans == 0, f"{table} has rows of a run that is not completed"
        completed = [
            r
            for (r,) in con.execute(
                "SELECT run_id FROM runs WHERE status = 'completed' AND kind = 'retrain'"
            ).fetchall()
        ]
        for run_id in completed:
            (n_models,) = one("SELECT count(DISTINCT model) FROM models WHERE run_id = ?", run_id)
            assert n_models > 0
            (n_fits,) = one(
                "SELECT count(DISTINCT (model, role)) FROM models WHERE run_id = ?", run_id
            )
            assert n_fits == 2 * n_models  # an evaluation and a forecast fit of each
            assert one("SELECT count(*) FROM metrics WHERE run_id = ?", run_id)[0] == n_models
            (horizon,) = one("SELECT params->>'horizon' FROM runs WHERE run_id = ?", run_id)
            for table in ("forecasts", "horizon_metrics"):  # months T+1 … T+horizon
                (n_rows,) = one(f"SELECT count(*) FROM {table} WHERE run_id = ?", run_id)
                assert n_rows == n_models * int(horizon), table
            (n_test, distinct_n) = one(
                "SELECT max(n), count(DISTINCT n) FROM metrics WHERE run_id = ?", run_id
            )
            assert distinct_n == 1
            assert (
                one("SELECT count(*) FROM predictions WHERE run_id = ?", run_id)[0]
                == n_models * n_test
            )
            (snapshot_rows, n_rows) = one(
                "SELECT (SELECT count(*) FROM prices p WHERE p.snapshot_id = s.snapshot_id),"
                " s.n_rows FROM runs r JOIN snapshots s USING (snapshot_id) WHERE r.run_id = ?",
                run_id,
            )
            assert snapshot_rows == n_rows
        statuses = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall())
        forecasts = con.execute("SELECT * FROM latest_forecasts").fetchall()
    return {"statuses": statuses, "latest_forecasts": forecasts, "completed": completed}


BACKTEST = ["--origins", "3", "--models", "naive,simple_rnn", "--epochs", "40"]
PHASES = {
    # phase: (command, source route, extra args, line that starts the phase, delay range in s)
    "download": ("run", "/drip.csv", [], "record_run_start", (0.2, 1.5)),
    "training": (
        "run",
        "/fast.csv",
        ["--epochs", "40"],
        "simple_rnn (model 3/3): training",
        (0.0, 2.0),
    ),
    "writing": ("run", "/fast.csv", [], "writing run", (0.0, 0.03)),
    "backtest": (
        "backtest",
        "/fast.csv",
        [*BACKTEST, "--task-runner", "thread"],
        "backtest-naive-from",
        (0.0, 1.5),
    ),
}
KILLS_PER_PHASE = 2


def test_sigkill_at_random_moments_loses_nothing(
    prefect_server: dict[str, str], http_server: LocalServer, tmp_path: Path
) -> None:
    rng = random.Random(20261125)
    body = to_csv_bytes(synthetic_prices(150, seed=9))
    http_server.serve("/fast.csv", Route(body=body))
    http_server.serve("/drip.csv", Route(body=body, fault="drip", delay=0.001))
    warehouse = tmp_path / "w.duckdb"
    env = {
        **prefect_server,
        "SP500_WAREHOUSE": str(warehouse),
        "SP500_MODELS": "naive,drift,simple_rnn",
        "SP500_EPOCHS": "2",
        "SP500_SEEDS": "2",
        "SP500_TIMEOUT_SECONDS": "60",
    }
    base = Run(env, "--source", http_server.base_url + "/fast.csv")
    assert base.finish() == 0, "".join(base.lines)
    before = consistency(warehouse)["latest_forecasts"]

    outcomes: Counter[str] = Counter()
    schedule = [phase for phase in PHASES for _ in range(KILLS_PER_PHASE)]
    rng.shuffle(schedule)
    for phase in schedule:
        command, route, extra, trigger, (low, high) = PHASES[phase]
        force = ["--force"] if command == "run" else []
        run = Run(env, "--source", http_server.base_url + route, *force, *extra, command=command)
        reached = run.wait_for(trigger)
        time.sleep(rng.uniform(low, high))
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGKILL)
        code = run.finish()
        seen = consistency(warehouse)
        if code == 0:  # finished (commit included) before the signal landed
            outcomes[f"{phase}: completed before the kill"] += 1
            before = seen["latest_forecasts"]
        else:
            assert code == -signal.SIGKILL, "".join(run.lines[-20:])
            assert reached
            outcomes[f"{phase}: killed"] += 1
            assert seen["latest_forecasts"] == before  # last good forecasts untouched

    # the next run marks every crashed run failed and then proceeds normally
    final = Run(env, "--source", http_server.base_url + "/fast.csv", "--force")
    assert final.finish() == 0, "".join(final.lines)
    seen = consistency(warehouse)
    assert "running" not in seen["statuses"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        errors = [
            e for (e,) in con.execute("SELECT error FROM runs WHERE status = 'failed'").fetchall()
        ]
        live_dirs = {p.name for p in (tmp_path / "models").iterdir()}
        completed = {
            r
            for (r,) in con.execute("SELECT run_id FROM runs WHERE status = 'completed'").fetchall()
        }
    assert all(e.startswith("crashed:") for e in errors)
    assert len(errors) == sum(v for k, v in outcomes.items() if k.endswith("killed"))
    assert live_dirs <= completed  # no saved models left behind by dead runs
    assert sum(outcomes.values()) == len(schedule) >= 8
    assert {k.split(":")[0] for k in outcomes if k.endswith("killed")} == set(PHASES)
    report = tmp_path.parent / "kill-loop-outcomes.json"
    report.write_text(json.dumps(dict(sorted(outcomes.items())), indent=2))
    print(json.dumps(dict(sorted(outcomes.items()))))  # noqa: T201 (shown with -s / in CI logs)


def test_two_runs_at_once_one_proceeds_the_other_says_busy(
    prefect_server: dict[str, str], http_server: LocalServer, tmp_path: Path
) -> None:
    body = to_csv_bytes(synthetic_prices(150, seed=4))
    slow = http_server.serve("/slow.csv", Route(body=body, fault="drip", delay=0.004))
    url = http_server.serve("/c.csv", Route(body=body))
    warehouse = tmp_path / "w.duckdb"
    env = {
        **prefect_server,
        "SP500_WAREHOUSE": str(warehouse),
        "SP500_SOURCE": url,
        "SP500_MODELS": "naive,gru",
        "SP500_EPOCHS": "2",
        "SP500_SEEDS": "2",
        "SP500_TIMEOUT_SECONDS": "120",
    }
    first = Run(env, "--source", slow)  # a slow download keeps it busy for a while
    assert first.wait_for("record_run_start")
    second = Run(env)
    assert second.finish() == 1
    run_id = (warehouse.parent / "w.duckdb.lock").read_text()
    assert any(
        f"error: warehouse busy (run {run_id} in progress)" in line for line in second.lines
    ), "".join(second.lines)
    assert "Traceback" not in "".join(second.lines)

    # a query while the first run trains answers from the last committed state
    query = subprocess.run(
        [str(SP500), "query", "SELECT status FROM runs", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert query.returncode == 0, query.stderr
    assert json.loads(query.stdout) == [{"status": "running"}]

    assert first.finish() == 0, "".join(first.lines)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall() == [
            ("completed", 1)
        ]


def test_query_while_a_writer_holds_the_file_says_busy(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    with duckdb_writer(warehouse):
        started = time.monotonic()
        result = subprocess.run(
            [str(SP500), "query", "SELECT 1", "--warehouse", str(warehouse)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "warehouse busy" in result.stderr and "retry" in result.stderr
        assert "Traceback" not in result.stderr
        assert time.monotonic() - started < 30
