from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from core.errors import WarehouseError
from warehouse.lock import hold_run_lock

pytestmark = pytest.mark.unit

HOLDER = (
    "import sys, time; from pathlib import Path; from warehouse.lock import hold_run_lock\n"
    "with hold_run_lock(Path(sys.argv[1]), 'run-A'):\n"
    "    print('held', flush=True); time.sleep(float(sys.argv[2]))\n"
)


def start_holder(path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_second_run_is_told_which_run_is_in_progress(tmp_path) -> None:
    holder = start_holder(tmp_path / "w.duckdb", 30)
    try:
        started = time.monotonic()
        with (
            pytest.raises(WarehouseError, match=r"warehouse busy \(run run-A in progress\)"),
            hold_run_lock(tmp_path / "w.duckdb", "run-B", wait_seconds=0.5, poll=0.05),
        ):
            pass
        assert 0.5 <= time.monotonic() - started < 3
    finally:
        holder.kill()
        holder.wait()


def test_waiting_run_proceeds_when_the_first_finishes(tmp_path) -> None:
    holder = start_holder(tmp_path / "w.duckdb", 1.0)
    started = time.monotonic()
    try:
        with hold_run_lock(tmp_path / "w.duckdb", "run-B", wait_seconds=20, poll=0.05):
            assert time.monotonic() - started >= 0.8  # got it only once the holder let go
    finally:
        holder.wait()


def test_sigkill_releases_the_lock(tmp_path) -> None:
    holder = start_holder(tmp_path / "w.duckdb", 30)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with hold_run_lock(tmp_path / "w.duckdb", "run-B"):
        assert (tmp_path / "w.duckdb.lock").read_text() == "run-B"
