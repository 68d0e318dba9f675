from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from core.errors import WarehouseError
from tests.conftest import duckdb_writer
from warehouse import store

pytestmark = pytest.mark.unit

PARAMS = {"models": ["naive"], "epochs": 1}


def output(run_id: str, snapshot: str = "abc") -> store.RunOutput:
    months = pd.date_range("2000-01-01", periods=3, freq="MS")
    return store.RunOutput(
        run_id=run_id,
        snapshot_id=snapshot,
        source="test://",
        fetched_at=datetime(2026, 1, 1, tzinfo=UTC),
        prices=pd.DataFrame({"month": months, "close": [1.0, 2.0, 3.0]}),
        models=pd.DataFrame(
            [
                {
                    "model": "naive",
                    "role": role,
                    "seed": None,
                    "trained_through": months[through],
                    "n_params": 0,
                    "epochs": 0,
                    "train_seconds": 0.0,
                    "artifact_path": None,
                    "artifact_sha256": None,
                }
                for role, through in (("evaluation", 1), ("forecast", 2))
            ]
        ),
        metrics=pd.DataFrame(
            [
                {
                    "model": "naive",
                    "split": "test",
                    "rmse": 1.0,
                    "mae": 1.0,
                    "mape": 1.0,
                    "mase": 1.0,
                    "theil_u2": 1.0,
                    "directional_accuracy": 0.0,
                    "n": 1,
                }
            ]
        ),
        predictions=pd.DataFrame(
            {"model": ["naive"], "month": months[-1:], "actual": [3.0], "predicted": [2.0]}
        ),
        forecasts=pd.DataFrame(
            [
                {
                    "model": "naive",
                    "target_month": pd.Timestamp("2000-04-01"),
                    "horizon": 1,
                    "point": 3.0,
                    "lower_80": 2.5,
                    "upper_80": 3.5,
                    "lower_95": 2.0,
                    "upper_95": 4.0,
                }
            ]
        ),
        seed_metrics=pd.DataFrame(columns=store.TABLE_COLUMNS["seed_metrics"]),
        comparisons=pd.DataFrame(columns=store.TABLE_COLUMNS["comparisons"]),
        horizon_metrics=pd.DataFrame(
            [
                {
                    "model": "naive",
                    "split": "test",
                    "horizon": 1,
                    "rmse": 1.0,
                    "mae": 1.0,
                    "theil_u2": 1.0,
                    "n": 1,
                }
            ]
        ),
    )


def count(path, table: str) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_migrate_is_idempotent(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    latest = store.migration_files()[-1][0]
    assert latest >= 2
    assert store.migrate(path) == latest
    assert store.migrate(path) == latest
    assert count(path, "schema_version") == len(store.migration_files())


def test_completed_run_round_trip(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    store.start_run(path, "r1", None, PARAMS)
    store.write_run(path, output("r1"))
    last = store.last_completed_run(path)
    assert last == store.CompletedRun("r1", "abc", PARAMS)
    columns, rows = store.query(path, "SELECT rank, model, run_id FROM leaderboard")
    assert columns == ["rank", "model", "run_id"]
    assert rows == [(1, "naive", "r1")]
    assert count(path, "prices") == 3


def test_failed_write_is_rolled_back_and_previous_results_stay(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    store.start_run(path, "r1", None, PARAMS)
    store.write_run(path, output("r1"))
    store.start_run(path, "r2", None, PARAMS)
    broken = output("r2", snapshot="def")
    bad_forecasts = broken.forecasts.assign(point=None)  # violates NOT NULL at the last insert
    with pytest.raises(duckdb.Error):
        store.write_run(path, store.RunOutput(**{**vars(broken), "forecasts": bad_forecasts}))
    assert count(path, "snapshots") == 1
    assert count(path, "metrics") == 1
    store.fail_run(path, "r2", "boom")
    _, rows = store.query(path, "SELECT run_id, status, error FROM runs ORDER BY run_id")
    assert rows == [("r1", "completed", None), ("r2", "failed", "boom")]
    _, rows = store.query(path, "SELECT DISTINCT run_id FROM leaderboard")
    assert rows == [("r1",)]


def test_failure_rows_are_stored(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    store.start_run(path, "r1", None, PARAMS)
    failures = pd.DataFrame(
        {
            "check_name": ["close_positive"],
            "column_name": ["close"],
            "failure_case": ["-1"],
            "row_index": pd.array([4], dtype="Int64"),
        }
    )
    store.fail_run(path, "r1", "validation failed", failures)
    _, rows = store.query(path, "SELECT * FROM validation_failures")
    assert rows == [("r1", "close_positive", "close", "-1", 4)]


@pytest.mark.parametrize("status", ["unchanged", "invalid"])
def test_a_run_closes_with_its_outcome_and_reason(tmp_path, status: str) -> None:
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    store.start_run(path, "r1", None, PARAMS)
    store.close_run(path, "r1", status, "why")
    _, rows = store.query(path, "SELECT status, reason, error FROM runs")
    assert rows == [(status, "why", None)]


def test_a_run_cannot_close_as_anything_else(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    store.start_run(path, "r1", None, PARAMS)
    with pytest.raises(ValueError, match="not 'completed'"):
        store.close_run(path, "r1", "completed", "why")


def test_missing_directory(tmp_path) -> None:
    with pytest.raises(WarehouseError, match="does not exist"):
        store.migrate(tmp_path / "nope" / "w.duckdb")


def test_read_only_directory(read_only_dir) -> None:
    path = read_only_dir / "w.duckdb"
    with pytest.raises(WarehouseError, match="not writable"):
        store.migrate(path)
    assert not path.exists()


def test_query_is_read_only(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    with pytest.raises(WarehouseError, match="read-only"):
        store.query(path, "DELETE FROM runs")


def test_query_without_warehouse(tmp_path) -> None:
    with pytest.raises(WarehouseError, match="no warehouse"):
        store.query(tmp_path / "none.duckdb", "SELECT 1")


def test_busy_warehouse_is_reported_after_the_busy_timeout(tmp_path, monkeypatch) -> None:
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    monkeypatch.setattr(store, "BUSY_SECONDS", 0.6)  # 15 s in production
    started = time.monotonic()
    with duckdb_writer(path), pytest.raises(WarehouseError, match="busy"):
        store.start_run(path, "r1", None, PARAMS)
    assert 0.6 <= time.monotonic() - started < 5.0


def backtest_output(run_id: str, snapshot: str = "abc", dm_pvalue: float | None = 0.04):
    base = output(run_id, snapshot)
    target = pd.Timestamp("2000-03-01")
    return store.BacktestOutput(
        run_id=run_id,
        snapshot_id=snapshot,
        source="test://",
        fetched_at=base.fetched_at,
        prices=base.prices,
        predictions=pd.DataFrame(
            {
                "model": ["naive", "drift"],
                "origin_month": [pd.Timestamp("2000-02-01")] * 2,
                "target_month": [target] * 2,
                "actual": [3.0, 3.0],
                "predicted": [2.0, 2.5],
                "train_seconds": [0.0, 0.1],
                "fit": ["scratch", "scratch"],
                "seed": [None, 42],
                "lower_80": [2.5, 2.0],  # naive's 80 % band misses the actual 3.0
                "upper_80": [2.9, 3.0],
                "lower_95": [2.0, 1.5],
                "upper_95": [3.5, 3.5],
            }
        ),
        metrics=pd.concat(
            [
                base.metrics.assign(split="backtest"),
                base.metrics.assign(model="drift", split="backtest", rmse=0.5, theil_u2=0.5),
            ],
            ignore_index=True,
        ),
        comparisons=pd.DataFrame(
            [
                {
                    "model": "drift",
                    "baseline": "naive",
                    "split": "backtest",
                    "horizon": 1,
                    "dm_stat": -2.5,
                    "dm_pvalue": dm_pvalue,
                    "n": 1,
                }
            ]
        ),
    )


def test_backtest_is_written_whole_and_stays_off_the_retrain_leaderboard(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    store.start_run(path, "r1", None, PARAMS)
    store.write_run(path, output("r1"))
    store.start_run(path, "b1", None, {"origins": 1}, kind="backtest")
    store.write_backtest(path, backtest_output("b1"))
    _, rows = store.query(path, "SELECT run_id, kind, status FROM runs ORDER BY run_id")
    assert rows == [("b1", "backtest", "completed"), ("r1", "retrain", "completed")]
    # the newer backtest is not "the latest run" of the monthly views or the unchanged check
    _, rows = store.query(path, "SELECT DISTINCT run_id FROM leaderboard")
    assert rows == [("r1",)]
    assert store.last_completed_run(path).run_id == "r1"
    _, rows = store.query(
        path,
        "SELECT rank, model, dm_pvalue, train_seconds, coverage_80, coverage_95, run_id"
        " FROM backtest_leaderboard",
    )
    assert rows == [
        (1, "drift", 0.04, 0.1, 1.0, 1.0, "b1"),
        (2, "naive", None, 0.0, 0.0, 1.0, "b1"),
    ]
    assert count(path, "snapshots") == 1  # same bytes as the retrain: stored once


def test_failed_backtest_write_leaves_nothing(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    store.start_run(path, "b1", None, {"origins": 1}, kind="backtest")
    broken = backtest_output("b1", snapshot="new")
    bad = broken.comparisons.assign(n=None)  # NOT NULL breaks at the last insert
    with pytest.raises(duckdb.Error):
        store.write_backtest(path, store.BacktestOutput(**{**vars(broken), "comparisons": bad}))
    for table in ("snapshots", "prices", "backtest_predictions", "metrics"):
        assert count(path, table) == 0, table
    _, rows = store.query(path, "SELECT status FROM runs")
    assert rows == [("running",)]  # the lifecycle marks it failed next
    with pytest.raises(WarehouseError, match="not running any more"):
        store.write_backtest(path, backtest_output("b2"))  # no running row: nothing written
    assert count(path, "backtest_predictions") == 0


def test_later_migrations_keep_existing_runs(tmp_path) -> None:
    """A warehouse at version 2 (before backtests and seeds) keeps its run through 3 to 5."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE schema_version ("
            " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        for version, name, sql in store.migration_files()[:2]:
            con.execute(sql.read_text())
            con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [version, name])
        con.execute(
            "INSERT INTO runs (run_id, status, started_at, finished_at, params)"
            " VALUES ('old', 'completed', now(), now(), '{}')"
        )
        con.execute("INSERT INTO models VALUES ('old', 'gru', 3905, 60, 8.0, 'm/gru.keras', 'ab')")
        con.execute("INSERT INTO metrics VALUES ('old', 'gru', 'test', 1, 1, 1, 1, 1, 0, 1)")
    assert store.migrate(path) == store.migration_files()[-1][0] >= 5
    _, rows = store.query(path, "SELECT run_id, kind FROM runs")
    assert rows == [("old", "retrain")]
    _, rows = store.query(path, "SELECT DISTINCT run_id FROM leaderboard")
    assert rows == [("old",)]
    _, rows = store.query(path, "SELECT model, role, n_params, seed, trained_through FROM models")
    assert rows == [("gru", "evaluation", 3905, None, None)]
    _, rows = store.query(path, "SELECT model, seeds, rmse_std, dm_pvalue FROM leaderboard")
    assert rows == [("gru", 0, None, None)]


def test_seed_metrics_and_test_comparisons_reach_the_leaderboard(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    store.start_run(path, "r1", None, PARAMS)
    base = output("r1")
    gru = base.metrics.assign(model="gru", rmse=0.5, theil_u2=0.5)
    members = pd.DataFrame(
        {
            "model": "gru",
            "seed": [42, 43, 44],
            "split": "test",
            "rmse": [0.4, 0.6, 0.8],
            "mae": [0.4, 0.6, 0.8],
            "theil_u2": [0.4, 0.6, 0.8],
        }
    )
    test = pd.DataFrame(
        [
            {
                "model": "gru",
                "baseline": "naive",
                "split": "test",
                "horizon": 1,
                "dm_stat": -1.0,
                "dm_pvalue": 0.3,
                "n": 1,
            }
        ]
    )
    run = store.RunOutput(
        **{
            **vars(base),
            "metrics": pd.concat([base.metrics, gru], ignore_index=True),
            "seed_metrics": members,
            "comparisons": test,
        }
    )
    store.write_run(path, run)
    _, rows = store.query(
        path,
        "SELECT rank, model, rmse, seeds, round(rmse_std, 6), rmse_min, rmse_max, dm_pvalue"
        " FROM leaderboard",
    )
    assert rows == [
        (1, "gru", 0.5, 3, 0.2, 0.4, 0.8, 0.3),
        (2, "naive", 1.0, 0, None, None, None, None),
    ]
    report = store.read_run_report(path)
    assert [r["seeds"] for r in report.leaderboard] == [3, 0]
    assert report.leaderboard[0]["dm_pvalue"] == 0.3
    _, rows = store.query(path, "SELECT role, trained_through FROM models ORDER BY role")
    assert [r[0] for r in rows] == ["evaluation", "forecast"]


DUCKDB_CLI = Path(sys.executable).with_name("duckdb")  # the duckdb-cli package (dev extra)


def cli_reads(path: Path, sql: str) -> subprocess.CompletedProcess[str]:
    """Run ``sql`` in the standalone DuckDB CLI, read-only, as a SQL user would."""
    return subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-csv", str(path), "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_new_warehouse_opens_in_the_standalone_duckdb_cli_after_every_write(tmp_path) -> None:
    version = subprocess.run(
        [str(DUCKDB_CLI), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert not version.startswith("v2.")  # an older DuckDB than the pipeline's own
    path = tmp_path / "w.duckdb"
    store.migrate(path)
    assert store.storage_version(path) == f"{store.STORAGE_VERSION}+"
    for run in ("r1", "r2"):
        store.start_run(path, run, None, PARAMS)
        store.write_run(path, output(run, snapshot=run))
        assert store.storage_version(path) == f"{store.STORAGE_VERSION}+"
        read = cli_reads(path, "SELECT rank, model, run_id FROM leaderboard")
        assert read.returncode == 0, read.stderr
        assert read.stdout.splitlines() == ["rank,model,run_id", f"1,naive,{run}"]


def test_compat_rewrites_a_warehouse_in_the_newest_format_losing_nothing(tmp_path) -> None:
    made = tmp_path / "made.duckdb"
    store.migrate(made)
    store.start_run(made, "r1", None, PARAMS)
    store.write_run(made, output("r1"))
    path = tmp_path / "w.duckdb"  # as a warehouse made before STORAGE_VERSION was set
    con = duckdb.connect()
    con.execute("ATTACH ? AS made (READ_ONLY)", [str(made)])
    con.execute("ATTACH ? AS old (STORAGE_VERSION 'v2.0.0')", [str(path)])
    con.execute("COPY FROM DATABASE made TO old")
    con.close()
    assert store.storage_version(path) == "v2.0.0+"
    refused = cli_reads(path, "SELECT 1")
    assert refused.returncode != 0 and "version number" in refused.stderr
    before = store.query(path, "SELECT * FROM leaderboard")

    assert store.convert_storage(path) is True
    assert store.storage_version(path) == f"{store.STORAGE_VERSION}+"
    assert store.query(path, "SELECT * FROM leaderboard") == before
    assert count(path, "schema_version") == len(store.migration_files())
    assert cli_reads(path, "SELECT model FROM leaderboard").stdout.splitlines() == [
        "model",
        "naive",
    ]
    assert store.convert_storage(path) is False  # once is enough
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made.duckdb", "w.duckdb"]


def test_compat_of_a_missing_warehouse_fails_in_one_line(tmp_path) -> None:
    with pytest.raises(WarehouseError, match=r"^no warehouse at "):
        store.convert_storage(tmp_path / "w.duckdb")
