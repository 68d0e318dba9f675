from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.errors import SettingsError, SourceError, ValidationFailed, WarehouseError
from tasks.run.lifecycle import RunLifecycle
from warehouse import store
from warehouse.lock import hold_run_lock

pytestmark = [pytest.mark.integration]  # runs Prefect tasks against the test API


@pytest.fixture(autouse=True)
def _api(prefect_api: None) -> None:
    """Prefect tasks need the session's test API."""


def lifecycle(tmp_path: Path, run_id: str = "r1", kind: str = "retrain") -> RunLifecycle:
    return RunLifecycle(
        tmp_path / "w.duckdb",
        tmp_path / "models",
        run_id,
        kind=kind,  # type: ignore[arg-type]
        params={"models": ["naive"]},
        flow_run_id=None,
        wait_seconds=0.0,
    )


def runs(tmp_path: Path) -> list[tuple]:
    _, rows = store.query(tmp_path / "w.duckdb", "SELECT run_id, kind, status, error FROM runs")
    return rows


@pytest.mark.parametrize("kind", ["retrain", "backtest"])
def test_entering_records_a_running_row_under_the_lock(tmp_path: Path, kind: str) -> None:
    with lifecycle(tmp_path, kind=kind) as run:
        assert runs(tmp_path) == [("r1", kind, "running", None)]
        with pytest.raises(WarehouseError, match=r"busy \(run r1 in progress\)"):
            with hold_run_lock(tmp_path / "w.duckdb", "other"):
                pass
        run.unchanged("r0", "sha")
    assert runs(tmp_path) == [("r1", kind, "unchanged", None)]
    with hold_run_lock(tmp_path / "w.duckdb", "other"):  # released
        pass


def test_a_crashed_run_is_failed_by_the_next_one(tmp_path: Path) -> None:
    (tmp_path / "models" / "dead").mkdir(parents=True)
    store.migrate(tmp_path / "w.duckdb")
    store.start_run(tmp_path / "w.duckdb", "dead", None, {}, kind="backtest")
    with lifecycle(tmp_path) as run:
        run.unchanged("r0", "sha")
    ((run_id, kind, status, error), _) = sorted(runs(tmp_path))
    assert (run_id, kind, status) == ("dead", "backtest", "failed")
    assert error == "crashed: the process ended before finishing (seen by r1)"
    assert not (tmp_path / "models" / "dead").exists()


@pytest.mark.parametrize(
    ("error", "recorded"),
    [
        (SourceError("HTTP 404 from the source"), "HTTP 404 from the source"),
        (KeyError("close"), "unexpected KeyError: 'close'"),
    ],
)
def test_an_exception_fails_the_run_and_goes_on(tmp_path: Path, error, recorded) -> None:
    with pytest.raises(type(error)), lifecycle(tmp_path) as run:
        run.artifact_dir.mkdir(parents=True)
        raise error
    assert runs(tmp_path) == [("r1", "retrain", "failed", recorded)]
    assert not (tmp_path / "models" / "r1").exists()


def test_validation_failures_are_kept(tmp_path: Path) -> None:
    failures = pd.DataFrame(
        {"check_name": ["close_positive"], "column_name": ["close"], "failure_case": ["-1"]}
        | {"row_index": [3]}
    )
    with pytest.raises(ValidationFailed), lifecycle(tmp_path):
        raise ValidationFailed("1 check failed: close_positive", failures)
    _, rows = store.query(tmp_path / "w.duckdb", "SELECT check_name FROM validation_failures")
    assert rows == [("close_positive",)]


def test_leaving_without_an_outcome_is_a_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="without committing or a reason"), lifecycle(tmp_path):
        pass
    assert runs(tmp_path)[0][2] == "failed"


def test_only_one_outcome(tmp_path: Path) -> None:
    with lifecycle(tmp_path) as run:
        run.unchanged("r0", "sha")
        with pytest.raises(RuntimeError, match="already unchanged"):
            run.unchanged("r0", "sha")


def test_every_outcome_leaves_its_row_with_the_reason(tmp_path: Path) -> None:
    """Did this month's run happen, and if not why: one query, whatever the outcome."""
    with lifecycle(tmp_path, "r1") as run:
        run.artifact_dir.mkdir(parents=True)
        run.unchanged("r0", "sha")
    with pytest.raises(SettingsError), lifecycle(tmp_path, "r2") as run:
        run.artifact_dir.mkdir(parents=True)
        raise SettingsError("invalid settings: evaluate_from: 1800-01 is outside the data")
    with pytest.raises(SourceError), lifecycle(tmp_path, "r3"):
        raise SourceError("HTTP 500 from the source")
    _, rows = store.query(
        tmp_path / "w.duckdb",
        "SELECT run_id, status, snapshot_id, reason, finished_at IS NOT NULL FROM runs"
        " ORDER BY run_id",
    )
    assert rows == [
        (
            "r1",
            "unchanged",
            "sha",
            "data unchanged since run r0; nothing to do (use --force to rerun)",
            True,
        ),
        (
            "r2",
            "invalid",
            None,
            "invalid settings: evaluate_from: 1800-01 is outside the data",
            True,
        ),
        ("r3", "failed", None, "HTTP 500 from the source", True),
    ]
    assert not any((tmp_path / "models").iterdir())  # no run kept models it did not commit


def test_a_failed_commit_fails_the_run(tmp_path: Path) -> None:
    with pytest.raises(AttributeError), lifecycle(tmp_path) as run:
        run.commit(object())  # not a RunOutput: the write fails before anything is stored
    ((_, _, status, error),) = runs(tmp_path)
    assert status == "failed"
    assert error.startswith("unexpected AttributeError: 'object' object has no attribute")
