from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _flows_use_the_test_api(prefect_api: None) -> None:
    """Every flow test talks to the session's temporary Prefect API."""
