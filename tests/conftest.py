"""Shared fixtures: a real local HTTP server on 127.0.0.1 and synthetic monthly series."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
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
    """What the test server answers on one path: a status, headers, a body, optional delay."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/csv"})
    delay: float = 0.0


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
            if route.delay:
                time.sleep(route.delay)
            self.send_response(route.status)
            for key, value in route.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalServer(f"http://127.0.0.1:{server.server_address[1]}", routes, hits)
    finally:
        server.shutdown()
        server.server_close()


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
