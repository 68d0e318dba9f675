"""The monthly-backtest flow: in-process runs, real data, and the thread/process/Dask runners."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from typer.testing import CliRunner

from core.settings import Settings
from flows.cli import app
from flows.monthly_backtest import monthly_backtest
from tasks.evaluation.calibrate import LEVELS, PastMoves, online_offsets, within_past_moves
from tests.conftest import (
    REAL_CSV,
    LocalServer,
    Route,
    free_port,
    stop_process_group,
    synthetic_prices,
    to_csv_bytes,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SP500 = Path(sys.executable).with_name("sp500")
TABLES = ("runs", "snapshots", "prices", "backtest_predictions", "metrics", "comparisons")


def settings(source: str, warehouse: Path, **kw: object) -> Settings:
    options = {
        "models": "naive,drift,lstm",
        "origins": 4,
        "chunk_size": 2,
        "epochs": 2,
        "seeds": 2,
        "download_attempts": 1,
        "timeout_seconds": 5,
    }
    options.update(kw)
    return Settings(source=source, warehouse=warehouse, **options)


def rows(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_backtest_writes_its_tables_and_artifact(http_server: LocalServer, tmp_path: Path) -> None:
    url = http_server.serve("/s.csv", Route(body=to_csv_bytes(synthetic_prices(90, seed=4))))
    warehouse = tmp_path / "w.duckdb"
    state = monthly_backtest(settings(url, warehouse), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert sorted(r["model"] for r in summary.table) == ["drift", "lstm", "naive"]

    assert rows(warehouse, "SELECT kind, status, error FROM runs") == [
        ("backtest", "completed", None)
    ]
    # 90 rows (1990-01 … 1997-06) → 78 samples; the origins forecast 1997-03 … 1997-06
    assert rows(
        warehouse,
        "SELECT model, strftime(origin_month, '%Y-%m'), strftime(target_month, '%Y-%m'), fit,"
        " seed FROM backtest_predictions WHERE model = 'lstm' ORDER BY target_month",
    ) == [
        ("lstm", "1997-02", "1997-03", "scratch", 42),
        ("lstm", "1997-03", "1997-04", "scratch", 42),
        ("lstm", "1997-04", "1997-05", "scratch", 42),
        ("lstm", "1997-05", "1997-06", "scratch", 42),
    ]
    assert rows(
        warehouse, "SELECT DISTINCT seed FROM backtest_predictions WHERE model = 'naive'"
    ) == [(None,)]
    # two chunks of two origins: two stacked fits, each task run named after its first month
    assert rows(warehouse, "SELECT json_extract(params, '$.chunk_size') FROM runs") == [("2",)]
    assert rows(warehouse, "SELECT count(*) FROM backtest_predictions") == [(12,)]
    assert rows(warehouse, "SELECT DISTINCT split, n FROM metrics") == [("backtest", 4)]
    assert rows(
        warehouse, "SELECT model, baseline, split, n FROM comparisons ORDER BY model, baseline"
    ) == [
        ("drift", "naive", "backtest", 4),
        ("lstm", "drift", "backtest", 4),
        ("lstm", "naive", "backtest", 4),
    ]
    board = rows(warehouse, "SELECT model, rmse, dm_pvalue FROM backtest_leaderboard")
    assert [r[0] for r in board] == [r["model"] for r in summary.table]
    assert rows(warehouse, "SELECT count(*) FROM leaderboard") == [(0,)]  # retrains only

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    (artifact,) = [a for a in artifacts if a.key == "sp500-backtest"]
    assert "dm_pvalue" in str(artifact.data)
    flow_run = get_client(sync_client=True).read_flow_run(state.state_details.flow_run_id)
    assert flow_run.name == "backtest-1997-06"


def test_too_many_origins_fail_before_anything_is_written(
    http_server: LocalServer, tmp_path: Path
) -> None:
    url = http_server.serve("/s.csv", Route(body=to_csv_bytes(synthetic_prices(40, seed=1))))
    warehouse = tmp_path / "w.duckdb"
    state = monthly_backtest(settings(url, warehouse, origins=21), return_state=True)
    assert state.is_failed()
    # 40 rows → 28 windows: at most 20 origins keep 8 training samples for the first fit
    assert state.message == (
        "--origins 21 is too many: the data gives 28 windows, so at most 20 origins leave"
        " the first fit 8 training samples"
    )
    assert not warehouse.exists()


def test_naive_backtest_on_the_real_data(
    http_server: LocalServer, real_csv_bytes: bytes, tmp_path: Path
) -> None:
    url = http_server.serve("/sp500.csv", Route(body=real_csv_bytes))
    warehouse = tmp_path / "w.duckdb"
    config = settings(url, warehouse, models="naive,drift", origins=60)
    state = monthly_backtest(config, return_state=True)
    assert state.is_completed(), state.message
    frame = pd.read_csv(REAL_CSV)
    close = frame["close"].to_numpy()
    # the naive forecast of each of the last 60 months is the month before it
    expected = float(np.sqrt(np.mean((close[-60:] - close[-61:-1]) ** 2)))
    ((rmse, n),) = rows(
        warehouse, "SELECT rmse, n FROM metrics WHERE model = 'naive' AND split = 'backtest'"
    )
    assert n == 60
    assert rmse == pytest.approx(expected)
    ((first, last),) = rows(
        warehouse,
        "SELECT strftime(min(target_month), '%Y-%m'), strftime(max(target_month), '%Y-%m')"
        " FROM backtest_predictions",
    )
    assert (first, last) == (frame["date"].iloc[-60][:7], frame["date"].iloc[-1][:7])
    ((pvalue,),) = rows(
        warehouse, "SELECT dm_pvalue FROM comparisons WHERE model = 'drift' AND baseline = 'naive'"
    )
    assert 0.0 < pvalue < 1.0
    # naive's bands, online from the errors of earlier origins only, recomputed from the CSV:
    # the stand-in is every 1-month move of the windows before the first forecast month, and
    # no band goes beyond the index's own 1-month moves so far
    errors = np.log(close[-60:] / close[-61:-1])
    made = pd.DatetimeIndex(frame["date"].iloc[-61:-1])
    months = (made.year * 12 + made.month - 1).to_numpy()
    stand_in = np.log(close[12:-60] / close[11:-61])  # the first window ends at index 11
    bands = online_offsets(months, 1, errors, months, history=stand_in)
    every = pd.DatetimeIndex(frame["date"])
    moves = PastMoves((every.year * 12 + every.month - 1).to_numpy(), close)
    at, worst, best = moves.at(months, 1)
    lower, upper = dict(bands.lower), dict(bands.upper)
    lower = {lv: v[:, None] for lv, v in lower.items()}
    upper = {lv: v[:, None] for lv, v in upper.items()}
    within_past_moves(lower, upper, np.log(close[-61:-1] / at)[:, None], worst, best)
    stored = rows(
        warehouse,
        "SELECT lower_80, upper_80, lower_95, upper_95 FROM backtest_predictions"
        " WHERE model = 'naive' ORDER BY target_month",
    )
    expected_bands = np.column_stack(
        [close[-61:-1] * np.exp(side[level][:, 0]) for level in LEVELS for side in (lower, upper)]
    )
    stored_bands = np.array(stored, dtype=np.float64)  # NULL → nan
    np.testing.assert_allclose(stored_bands, expected_bands, rtol=1e-12)
    assert np.isfinite(stored_bands).all()  # the stand-in leaves no month in the warm-up
    inside = (stored_bands[:, 0] <= close[-60:]) & (close[-60:] <= stored_bands[:, 1])
    ((coverage,),) = rows(
        warehouse, "SELECT coverage_80 FROM backtest_leaderboard WHERE model = 'naive'"
    )
    assert coverage == pytest.approx(np.mean(inside))


# --- the CLI with each task runner ------------------------------------------------------


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A new user's environment: fresh PREFECT_HOME, no Prefect API, no SP500_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SP500_"))}
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def sp500(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SP500), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory, cli_env) -> Iterator[tuple[str, Path]]:
    """A real dask.distributed LocalCluster: scheduler and 2 worker processes on 127.0.0.1."""
    port = free_port()
    log = tmp_path_factory.mktemp("dask") / "cluster.log"
    script = (
        "import sys, time\n"
        "from distributed import LocalCluster\n"
        "if __name__ == '__main__':\n"
        "    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,"
        " host='127.0.0.1', scheduler_port=int(sys.argv[1]), dashboard_address=None)\n"
        "    print('ready', cluster.scheduler_address, flush=True)\n"
        "    time.sleep(3600)\n"
    )
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", script, str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=cli_env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "ready" not in log.read_text():
            assert process.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the Dask cluster did not start in 120 s"
            time.sleep(0.3)
        yield f"tcp://127.0.0.1:{port}", log
    finally:
        stop_process_group(process, 15)


def backtest_rows(warehouse: Path) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "SELECT model, origin_month, target_month, actual, predicted, fit"
            " FROM backtest_predictions ORDER BY model, target_month"
        ).df()


def test_thread_process_and_dask_runners_agree(
    cli_env, prefect_server, dask_cluster, http_server: LocalServer, tmp_path: Path
) -> None:
    address, cluster_log = dask_cluster
    url = http_server.serve("/s.csv", Route(body=to_csv_bytes(synthetic_prices(80, seed=6))))
    options = {"models": "naive,drift,gru", "origins": 2, "chunk_size": 1, "epochs": 3}
    options["seeds"] = 2
    # the thread runner in this process; the others through the CLI: the default runner (a
    # process pool) against a running server (no temporary one), Dask as a new user (the CLI
    # starts one temporary server and the cluster's workers report to it; a process pool's
    # workers do the same in test_monthly_retrain's side-by-side run)
    reference = tmp_path / "thread.duckdb"
    state = monthly_backtest(
        settings(url, reference, task_runner="thread", **options), return_state=True
    )
    assert state.is_completed(), state.message
    results = {"thread": backtest_rows(reference)}
    common = ["--source", url, "--models", "naive,drift,gru", "--origins", "2"]
    common += ["--chunk-size", "1", "--epochs", "3", "--seeds", "2"]
    for runner, env, extra in [
        ("default", prefect_server, []),
        ("dask", cli_env, ["--task-runner", "dask", "--dask-address", address]),
    ]:
        warehouse = tmp_path / f"{runner}.duckdb"
        done = sp500(env, "backtest", *common, *extra, "--warehouse", str(warehouse))
        assert done.returncode == 0, done.stderr[-3000:]
        assert "completed: 3 models x 2 origins" in done.stdout
        results[runner] = backtest_rows(warehouse)
        servers = (done.stdout + done.stderr).count("Starting temporary server")
        assert servers == (0 if runner == "default" else 1), runner

    # every Dask task ran on the cluster's workers and reported to the run's own server
    cluster_output = cluster_log.read_text()
    assert cluster_output.count("backtest-gru-from-") >= 2
    assert "Starting temporary server" not in cluster_output

    thread = results["thread"]
    for runner in ("default", "dask"):
        other = results[runner]
        keys = ["model", "origin_month", "target_month", "actual", "fit"]
        pd.testing.assert_frame_equal(other[keys], thread[keys])
        baselines = thread["model"] != "gru"
        np.testing.assert_array_equal(
            other.loc[baselines, "predicted"], thread.loc[baselines, "predicted"]
        )
        np.testing.assert_allclose(other["predicted"], thread["predicted"], rtol=0.02)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--origins", "0"], "origins: Input should be greater than or equal to 1"),
        (["--origins", "-5"], "origins: Input should be greater than or equal to 1"),
        (["--chunk-size", "0"], "chunk_size: Input should be greater than or equal to 1"),
        (["--dask-address", "tcp://127.0.0.1:1"], "--dask-address needs --task-runner dask"),
    ],
)
def test_bad_backtest_options_fail_with_one_line(tmp_path, monkeypatch, args, pattern) -> None:
    """In-process through typer's CliRunner: the options fail before any flow starts."""
    for name in [k for k in os.environ if k.startswith("SP500_")]:
        monkeypatch.delenv(name)
    warehouse = tmp_path / "w.duckdb"
    result = CliRunner().invoke(app, ["backtest", *args, "--warehouse", str(warehouse)])
    assert result.exit_code == 2
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert pattern in line
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not warehouse.exists()


@pytest.mark.parametrize("option", ["--warm-start", "--refit-every", "--warm-epochs"])
def test_removed_warm_start_options_are_unknown(option) -> None:
    result = CliRunner().invoke(app, ["backtest", option, "1"])
    assert result.exit_code == 2
    assert f"No such option: {option}" in result.stderr


def test_too_many_origins_from_the_cli(http_server: LocalServer, tmp_path, monkeypatch) -> None:
    """In-process: the download succeeds, the plan fails, exit 1 with one line, no file."""
    for name in [k for k in os.environ if k.startswith("SP500_")]:
        monkeypatch.delenv(name)
    url = http_server.serve("/s.csv", Route(body=to_csv_bytes(synthetic_prices(40, seed=1))))
    warehouse = tmp_path / "w.duckdb"
    args = ["backtest", "--origins", "500", "--source", url, "--warehouse", str(warehouse)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert errors[-1].startswith("error: --origins 500 is too many"), result.stderr
    assert "Traceback" not in result.stderr
    assert not warehouse.exists()


def test_dask_address_that_does_not_answer(cli_env, tmp_path) -> None:
    warehouse = tmp_path / "w.duckdb"
    address = f"tcp://127.0.0.1:{free_port()}"
    env = {**cli_env, "SP500_TIMEOUT_SECONDS": "3"}
    started = time.monotonic()
    result = sp500(
        env,
        "backtest",
        "--task-runner",
        "dask",
        "--dask-address",
        address,
        "--warehouse",
        str(warehouse),
        timeout=120,
    )
    assert time.monotonic() - started < 60
    assert result.returncode == 1
    (line,) = error_lines(result)
    assert line.startswith(f"error: no Dask scheduler answered at {address} within 3 s")
    assert "Traceback" not in result.stderr
    assert not warehouse.exists()
