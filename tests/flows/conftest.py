from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    """One temporary Prefect API (its own SQLite database) for every flow test."""
    from prefect.testing.utilities import prefect_test_harness

    # the harness's server is a subprocess: keep its offline telemetry attempts quiet
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=120):
        yield
