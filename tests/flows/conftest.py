from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.settings import Settings
from flows.monthly_retrain import monthly_retrain
from tests.conftest import synthetic_prices, to_csv_bytes


@pytest.fixture(scope="session", autouse=True)
def _flows_use_the_test_api(prefect_api: None) -> None:
    """Every flow test talks to the session's temporary Prefect API."""


@pytest.fixture(scope="session")
def prebuilt_warehouse(tmp_path_factory: pytest.TempPathFactory, prefect_api: None) -> Path:
    """One completed baseline run (naive, drift) on 150 synthetic months, built once.

    Tests that need "a warehouse with a good run in it" copy this file instead of running
    the flow again; see ``warehouse_with_a_run``.
    """
    home = tmp_path_factory.mktemp("prebuilt")
    source = home / "good.csv"
    source.write_bytes(to_csv_bytes(synthetic_prices(150)))
    warehouse = home / "w.duckdb"
    settings = Settings(source=str(source), warehouse=warehouse, models=("naive", "drift"))
    state = monthly_retrain(settings, return_state=True)
    assert state.is_completed(), state.message
    return warehouse


@pytest.fixture
def warehouse_with_a_run(prebuilt_warehouse: Path, tmp_path: Path) -> Path:
    """A private copy of the pre-built warehouse (baselines save no model files)."""
    path = tmp_path / "w.duckdb"
    shutil.copyfile(prebuilt_warehouse, path)
    return path
