"""Shared fixtures: a real local HTTP server on 127.0.0.1 and synthetic monthly series."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REAL_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sp500_monthly.csv"


def synthetic_prices(n: int = 120, seed: int = 0, start: str = "1990-01-01") -> pd.DataFrame:
    """A geometric random walk of ``n`` first-of-month closes starting near 100."""
    rng = np.random.default_rng(seed)
    months = pd.date_range(start, periods=n, freq="MS")
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.006, 0.035, n)))
    return pd.DataFrame({"date": months.strftime("%Y-%m-%d"), "close": close.round(2)})


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """Frame as CSV bytes without the index."""
    return frame.to_csv(index=False).encode()


@dataclass
class Route:
    """What the test server answers on one path: a status, headers, a body, and a fault.

    ``fault`` is one of: ``""`` (a plain answer), ``"reset"`` (half the body, then the
    connection drops), ``"stall"`` (headers, then ``delay`` seconds of silence), ``"drip"``
    (one byte every ``delay`` seconds), ``"long_length"`` / ``"short_length"`` (a
    Content-Length 100 bytes too long / half the body), ``"redirect_loop"`` (302 to itself).
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/csv"})
    delay: float = 0.0
    fault: str = ""


@dataclass
class LocalServer:
    """A threaded HTTP server on 127.0.0.1 with per-path routes and a hit counter."""

    base_url: str
    routes: dict[str, list[Route]]
    hits: dict[str, int]

    def serve(self, path: str, *responses: Route) -> str:
        """Answer ``path`` with ``responses`` in turn (the last one repeats); return its URL."""
        self.routes[path] = list(responses)
        self.hits[path] = 0
        return self.base_url + path


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    """Start a local HTTP server for one test and stop it afterwards."""
    routes: dict[str, list[Route]] = {}
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            responses = routes.get(self.path)
            if not responses:
                self.send_error(404)
                return
            index = min(hits[self.path], len(responses) - 1)
            hits[self.path] += 1
            route = responses[index]
            if route.fault == "redirect_loop":
                self.send_response(302)
                self.send_header("Location", self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.delay and not route.fault:
                time.sleep(route.delay)
            self.send_response(route.status)
            for key, value in route.headers.items():
                self.send_header(key, value)
            length = {"long_length": len(route.body) + 100, "short_length": len(route.body) // 2}
            self.send_header("Content-Length", str(length.get(route.fault, len(route.body))))
            self.end_headers()
            self.wfile.flush()
            if route.fault == "reset":
                self.wfile.write(route.body[: len(route.body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
            elif route.fault == "stall":
                time.sleep(route.delay)
            elif route.fault == "drip":
                for i in range(len(route.body)):
                    self.wfile.write(route.body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(route.delay)
            else:
                self.wfile.write(route.body)
            if route.fault in ("long_length", "short_length"):
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            # a client that gives up (timeout, SIGKILL) mid-answer is what some tests do
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalServer(f"http://127.0.0.1:{server.server_address[1]}", routes, hits)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def float64() -> Iterator[None]:
    """Keras computes in float64 for one test, so two computations agree to rounding only.

    A stacked network and its exported members (or a plain Keras fit) compute the same sums
    in different orders: einsum against dense kernels, another CPU's vector kernels. In
    float32 twelve recurrent steps then differ by about 1e-5 relative, which a layout bug can
    hide behind; in float64 the same paths agree to about 1e-14, so ``rtol=1e-9`` passes on
    any x86_64 or aarch64 CPU and a wrong gate, weight or mask still fails by orders of
    magnitude.
    """
    import keras

    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # layers take the policy, cached at first use
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


@pytest.fixture
def real_csv_bytes() -> bytes:
    """The real monthly S&P 500 CSV beside the checkout; skips when it is absent."""
    if not REAL_CSV.is_file():
        pytest.skip(f"real dataset not present at {REAL_CSV}")
    return REAL_CSV.read_bytes()


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody may create files in, root included (root ignores mode bits)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(directory)], check=False).returncode != 0:
        pytest.skip("cannot make a directory read-only for root here (chattr +i failed)")
    try:
        yield directory
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


@contextmanager
def duckdb_writer(path: Path) -> Iterator[None]:
    """Another process holding a read-write DuckDB connection to ``path`` for the block."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
            " print('ready', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield
    finally:
        holder.kill()
        holder.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen, sig: int, timeout: float = 20) -> None:
    """Signal a process started with ``start_new_session``; SIGKILL it if it lingers."""
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real ``prefect server start`` on 127.0.0.1; yields the env that points at it."""
    import httpx

    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SP500_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
    )
    prefect = Path(sys.executable).with_name("prefect")
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prefect server did not start within 180 s")
            time.sleep(0.5)
        yield {**env, "PREFECT_API_URL": api}
    finally:
        stop_process_group(server, signal.SIGTERM)
        log.close()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One temporary Prefect API (its own SQLite database) for the tests that run tasks."""
    from prefect.testing.utilities import prefect_test_harness

    # the harness's server is a subprocess: keep its offline telemetry attempts quiet
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=120):
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slow end-to-end tests first, so pytest-xdist's workers finish together.

    The kill loop and the runner comparison take a minute and a half each; collected in
    file order they would start late and leave one worker busy while the other idles.
    The sort is stable, so the order within each group stays the files' order.
    """

    def group(item: pytest.Item) -> tuple[int, int]:
        marks = {mark.name for mark in item.iter_markers()}
        longest = 0 if item.originalname in LONGEST else 1
        if {"slow", "integration"} <= marks:
            return (0, longest)
        return (1 if "slow" in marks else 2, longest)

    items.sort(key=group)


# the three longest tests (--durations), started first
LONGEST = (
    "test_sigkill_at_random_moments_loses_nothing",
    "test_thread_process_and_dask_runners_agree",
    "test_serve_schedules_and_runs_with_artifacts",
)
