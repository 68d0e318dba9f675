"""`sp500 notify` against a real `prefect server start` and an HTTP sink on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tasks.run.notify import AUTOMATIONS, MISSED, RUN_COMPLETED, TEST_EVENT
from tests.conftest import (
    LocalServer,
    Route,
    free_port,
    stop_process_group,
    synthetic_prices,
    to_csv_bytes,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SP500 = Path(sys.executable).with_name("sp500")
DELIVERY_SECONDS = 60


class Sink:
    """POST bodies received on 127.0.0.1, as (content type, parsed JSON)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    parsed = json.loads(body)
                except ValueError:  # kept, so a failure shows what arrived
                    parsed = {"event": None, "raw": body.decode(errors="replace")}
                    parsed["headers"] = dict(self.headers)
                received.append((self.headers.get("Content-Type", ""), parsed))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 64  # a burst of events is accepted, not refused

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, wanted: Callable[[dict], bool]) -> dict:
        """The first body ``wanted`` accepts, within ``DELIVERY_SECONDS``."""
        deadline = time.monotonic() + DELIVERY_SECONDS
        while time.monotonic() < deadline:
            for content_type, body in list(self.bodies):
                if wanted(body):
                    assert content_type == "application/json"
                    return body
            time.sleep(0.5)
        raise AssertionError(f"nothing wanted arrived in {DELIVERY_SECONDS} s: {self.bodies}")


@pytest.fixture
def sink() -> Iterator[Sink]:
    receiver = Sink()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def sp500(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SP500), *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def automations(api: str) -> list[dict]:
    response = httpx.post(f"{api}/automations/filter", json={}, timeout=10)
    response.raise_for_status()
    return [a for a in response.json() if a["name"].startswith("sp500: ")]


def serve_and_kill_a_run(env: dict[str, str], sink_url: str, tmp_path: Path) -> str:
    """Serve with --notify-url, start a long run, SIGKILL its process; return its id."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    serving = subprocess.Popen(
        [str(SP500), "serve", "--notify-url", sink_url],
        env={**env, "SP500_MODELS": "lstm", "SP500_EPOCHS": "2000"},
        cwd=tmp_path,
        stdout=(tmp_path / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    async def start_run() -> str:
        async with get_client() as client:
            deadline = time.monotonic() + 180
            while True:
                try:
                    deployment = await client.read_deployment_by_name("monthly-retrain/monthly")
                    break
                except Exception:
                    assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                    await asyncio.sleep(1)
            run = await client.create_flow_run_from_deployment(
                deployment.id, parameters=deployment.parameters
            )
            while not (await client.read_flow_run(run.id)).state.is_running():
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                await asyncio.sleep(0.5)
            return str(run.id)

    try:
        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
            run_id = asyncio.run(start_run())
        time.sleep(2)
        children = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(serving.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines()
        flows = [int(c.split()[0]) for c in children if "spawn_main" in c]
        assert len(flows) == 1, (children, (tmp_path / "serve.log").read_text()[-3000:])
        (flow_process,) = flows
        os.kill(flow_process, signal.SIGKILL)
        return run_id
    finally:
        time.sleep(3)  # let the runner report the crash before it stops
        stop_process_group(serving, signal.SIGINT, timeout=30)


def test_automations_deliver_failures_misses_and_crashes_to_a_webhook(
    prefect_server: dict[str, str], http_server: LocalServer, sink: Sink, tmp_path: Path
) -> None:
    api = prefect_server["PREFECT_API_URL"]
    env = {**prefect_server, "SP500_WAREHOUSE": str(tmp_path / "w.duckdb")}

    # twice: the second call updates, one automation per trigger
    for _ in range(2):
        done = sp500(env, "notify", "--url", sink.url)
        assert done.returncode == 0, done.stderr
    names = Counter(a["name"] for a in automations(api))
    assert names == Counter(spec.name for spec in AUTOMATIONS)
    done = sp500(env, "notify", "--test")
    assert done.returncode == 0, done.stderr
    assert sink.wait_for(lambda b: b["event"] == TEST_EVENT)["resource"] == "sp500.notify"

    # a run whose only source is down: Failed, with its message and a link to the run
    down = http_server.serve("/down.csv", Route(status=404))
    failed = sp500(env, "run", "--source", down, "--models", "naive")
    assert failed.returncode == 1
    body = sink.wait_for(lambda b: b["event"] == "prefect.flow-run.Failed")
    assert body["flow"] == "monthly-retrain" and body["state"] == "Failed"
    assert "HTTP 404" in body["message"]
    assert "/runs/flow-run/" in body["link"]

    # a month falls 30 % below every band: the earlier run's forecast for it missed
    series = synthetic_prices(151, seed=3)
    series.loc[150, "close"] = series.loc[149, "close"] * 0.7
    before = http_server.serve("/a.csv", Route(body=to_csv_bytes(series.head(150))))
    after = http_server.serve("/b.csv", Route(body=to_csv_bytes(series)))
    for source in (before, after):
        done = sp500(env, "run", "--source", source, "--models", "naive,drift", "--epochs", "1")
        assert done.returncode == 0, done.stderr
    missed = sink.wait_for(lambda b: b["event"] == MISSED and b["payload"]["model"] == "naive")[
        "payload"
    ]
    assert (missed["horizon"], missed["target_month"]) == (1, series["date"].iloc[150][:7])
    assert missed["actual"] == pytest.approx(series["close"].iloc[150], rel=1e-6)
    assert missed["actual"] < missed["lower_95"] < missed["upper_95"]
    completed = sink.wait_for(
        lambda b: b["event"] == RUN_COMPLETED and b["payload"]["run_id"] == missed["run_id"]
    )["payload"]
    assert completed["lower_95"] < completed["point"] < completed["upper_95"]
    assert completed["flow_run"] == f"retrain-{series['date'].iloc[150][:7]}"

    # under serve, a run whose process is killed is reported Crashed, and that arrives too
    env["SP500_SOURCE"] = before
    killed = serve_and_kill_a_run(env, sink.url, tmp_path)
    crashed = sink.wait_for(lambda b: b["event"] == "prefect.flow-run.Crashed")
    assert crashed["state"] == "Crashed" and crashed["link"].endswith(killed)
    assert Counter(a["name"] for a in automations(api)) == names  # serve updated, not added

    # a webhook nobody answers never fails a run: the automation's action fails instead
    done = sp500(env, "notify", "--url", f"http://127.0.0.1:{free_port()}/gone")
    assert done.returncode == 0, done.stderr
    done = sp500(env, "run", "--source", after, "--models", "naive", "--force")
    assert done.returncode == 0, done.stderr

    for automation in automations(api):  # leave the shared server as it was
        httpx.delete(f"{api}/automations/{automation['id']}", timeout=10).raise_for_status()
