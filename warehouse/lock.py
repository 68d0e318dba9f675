"""An exclusive per-warehouse run lock (``<warehouse>.lock``) that a crash releases by itself."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import WarehouseError


def lock_path(warehouse: Path) -> Path:
    """Path of the lock file that sits beside the warehouse file."""
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.name + ".lock")


@contextmanager
def hold_run_lock(
    warehouse: Path, run_id: str, wait_seconds: float = 0.0, poll: float = 0.25
) -> Iterator[None]:
    """Hold the warehouse's run lock for the block, waiting up to ``wait_seconds`` for it.

    The lock is an ``flock`` on a file: the kernel drops it when the holding process dies,
    even by SIGKILL, so a ``running`` row found while holding it belongs to a dead run.

    Raises:
        WarehouseError: another run held the lock for longer than ``wait_seconds``.
    """
    path = lock_path(warehouse)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                    raise WarehouseError(
                        f"warehouse busy (run {holder} in progress): {warehouse}"
                    ) from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, run_id.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
