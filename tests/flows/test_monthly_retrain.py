from __future__ import annotations

import hashlib
import io
import itertools
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from core.settings import KERAS_MODELS, Settings
from flows.monthly_retrain import monthly_retrain
from tasks.models.keras_quiet import keras
from tasks.run.report import data_notes
from tests.conftest import LocalServer, Route, free_port, synthetic_prices, to_csv_bytes
from warehouse.store import read_run_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def settings(source: str, warehouse: Path, **kw: object) -> Settings:
    options = {"epochs": 1, "download_attempts": 2, "backoff_seconds": 0.01, "timeout_seconds": 5}
    options.update(kw)
    return Settings(source=source, warehouse=warehouse, **options)


def rows(path: Path, sql: str, *params: object) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def counts(path: Path) -> dict[str, int]:
    tables = [
        "snapshots",
        "prices",
        "runs",
        "models",
        "metrics",
        "predictions",
        "forecasts",
        "validation_failures",
        "seed_metrics",
        "comparisons",
        "horizon_metrics",
    ]
    return {t: rows(path, f"SELECT count(*) FROM {t}")[0][0] for t in tables}


def test_synthetic_series_over_http_fills_tables_and_reruns_as_no_op(
    http_server: LocalServer, tmp_path: Path
) -> None:
    url = http_server.serve("/s.csv", Route(body=to_csv_bytes(synthetic_prices(150, seed=2))))
    warehouse = tmp_path / "w.duckdb"
    config = settings(url, warehouse, models="naive,drift,lstm", seeds=2)
    state = monthly_retrain(config, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary.status == "completed"
    assert [r["model"] for r in summary.leaderboard] == [
        m for (m,) in rows(warehouse, "SELECT model FROM leaderboard")
    ]
    first = counts(warehouse)
    # 150 rows → 138 samples → 110 train / 28 test
    assert first == {
        "snapshots": 1,
        "prices": 150,
        "runs": 1,
        "models": 2 * (1 + 1 + 2),  # evaluation and forecast fits; lstm's two seeds
        "metrics": 3,
        "predictions": 3 * 28,
        "forecasts": 3 * 12,  # months T+1 … T+12 (the default --horizon)
        "validation_failures": 0,
        "seed_metrics": 2,
        # drift and lstm vs naive, lstm vs drift: on the test split and, at every
        # horizon, in the rolling evaluation
        "comparisons": 3 + 3 * 12,
        "horizon_metrics": 3 * 12,
    }
    saved = rows(
        warehouse,
        "SELECT role, seed, artifact_path, artifact_sha256 FROM models WHERE model = 'lstm'"
        " ORDER BY role, seed",
    )
    assert [(role, seed) for role, seed, _, _ in saved] == [
        ("evaluation", 42),
        ("evaluation", 43),
        ("forecast", 42),
        ("forecast", 43),
    ]
    for _, _, path, sha in saved:  # relative to the warehouse's folder
        assert path.startswith("models/") and not Path(path).is_absolute()
        assert hashlib.sha256((warehouse.parent / path).read_bytes()).hexdigest() == sha
    months = pd.date_range("2002-07-01", periods=12, freq="MS").strftime("%Y-%m-%d")
    for model in ("naive", "drift", "lstm"):
        path = rows(
            warehouse,
            "SELECT horizon, target_month::VARCHAR FROM latest_forecasts WHERE model = ?"
            " ORDER BY horizon",
            model,
        )
        assert path == list(zip(range(1, 13), months, strict=True))

    again = monthly_retrain(config, return_state=True)
    assert again.is_completed()
    assert again.result().status == "unchanged"
    assert "data unchanged since run" in again.result().message
    assert counts(warehouse) == {**first, "runs": 2}  # the unchanged run's row, nothing else
    ((status, reason, snapshot),) = rows(
        warehouse, "SELECT status, reason, snapshot_id FROM runs WHERE status <> 'completed'"
    )
    assert status == "unchanged" and reason == again.result().message
    assert rows(warehouse, "SELECT count(*) FROM snapshots WHERE snapshot_id = ?", snapshot) == [
        (1,)
    ]

    forced = monthly_retrain(config.model_copy(update={"force": True}), return_state=True)
    assert forced.is_completed()
    after = counts(warehouse)
    assert after["runs"] == 3 and after["metrics"] == 6 and after["snapshots"] == 1
    assert after["models"] == 2 * first["models"]
    # the folder moves, the saved models still load from the warehouse's own folder
    moved = tmp_path.with_name(tmp_path.name + "-moved")
    tmp_path.rename(moved)
    try:
        stored = rows(moved / warehouse.name, "SELECT artifact_path FROM models")
        saved_paths = [p for (p,) in stored if p is not None]
        assert len(saved_paths) == 8  # lstm: 2 seeds x (evaluation, forecast) x 2 runs
        for path in saved_paths:
            assert keras.saving.load_model(moved / path).count_params() > 0
    finally:
        moved.rename(tmp_path)


def test_real_data_over_http_reproduces_lesson_split(
    http_server: LocalServer, real_csv_bytes: bytes, tmp_path: Path
) -> None:
    url = http_server.serve("/sp500_monthly.csv", Route(body=real_csv_bytes))
    warehouse = tmp_path / "w.duckdb"
    state = monthly_retrain(settings(url, warehouse, seeds=2), return_state=True)
    assert state.is_completed(), state.message
    # expectations from the CSV itself (it gains a row every month): the lesson's split
    frame = pd.read_csv(io.BytesIO(real_csv_bytes))
    close, n_samples = frame["close"].to_numpy(), len(frame) - 12
    n_test = n_samples - int(n_samples * 0.8)
    per_model = dict(rows(warehouse, "SELECT model, count(*) FROM predictions GROUP BY model"))
    assert per_model == dict.fromkeys(
        ["naive", "drift", "simple_rnn", "gru", "lstm", "conv1d_lstm", "mean"], n_test
    )
    # mean: the equal-weight mean of drift's and the networks' forecasts, month by month
    ((gap,),) = rows(
        warehouse,
        "SELECT max(abs(m.predicted - c.avg)) FROM predictions AS m JOIN ("
        " SELECT month, avg(predicted) AS avg FROM predictions"
        " WHERE model NOT IN ('naive', 'mean') GROUP BY month) AS c USING (month)"
        " WHERE m.model = 'mean'",
    )
    assert gap < 1e-6
    ((first, last),) = rows(
        warehouse, "SELECT min(month)::VARCHAR, max(month)::VARCHAR FROM predictions"
    )
    assert (first, last) == (frame["date"].iloc[-n_test], frame["date"].iloc[-1])
    ((naive_rmse, naive_mae),) = rows(
        warehouse, "SELECT rmse, mae FROM leaderboard WHERE model = 'naive'"
    )
    errors = close[-n_test:] - close[-n_test - 1 : -1]
    assert naive_rmse == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert naive_mae == pytest.approx(np.mean(np.abs(errors)))
    params = dict(rows(warehouse, "SELECT model, n_params FROM models"))
    assert params == {
        "naive": 0,
        "drift": 1,
        "simple_rnn": 1633,
        "gru": 3905,
        "lstm": 4897,
        "conv1d_lstm": 8993,
        "mean": 1 + 1633 + 3905 + 4897 + 8993,  # the sum of its parts (drift and the networks)
    }
    # every model fitted twice (evaluation, forecast); a network as 2 seeds, one row each
    fits = rows(
        warehouse,
        "SELECT model, role, trained_through::VARCHAR, list(seed ORDER BY seed)"
        " FROM models GROUP BY ALL ORDER BY ALL",
    )
    split = int(n_samples * 0.8)
    through = {"evaluation": frame["date"].iloc[12 + split - 1], "forecast": frame["date"].iloc[-1]}
    assert fits == sorted(
        (m, role, through[role], [None] if m in ("naive", "drift", "mean") else [42, 43])
        for m in ("naive", "drift", *KERAS_MODELS, "mean")
        for role in ("evaluation", "forecast")
    )
    spread = rows(warehouse, "SELECT model, seeds, rmse_min <= rmse_max FROM leaderboard")
    assert {m: (n, ok) for m, n, ok in spread} == {
        "naive": (0, None),
        "drift": (0, None),
        "mean": (0, None),
    } | dict.fromkeys(KERAS_MODELS, (2, True))
    tested = rows(
        warehouse, "SELECT model, baseline FROM comparisons WHERE split = 'test' ORDER BY ALL"
    )
    assert tested == sorted(
        [(m, "naive") for m in ("drift", *KERAS_MODELS, "mean")]
        + [(m, "drift") for m in (*KERAS_MODELS, "mean")]
        + [("conv1d_lstm", "lstm")]
    )
    assert rows(
        warehouse, "SELECT n_rows, first_month::VARCHAR, last_month::VARCHAR FROM snapshots"
    ) == [(len(frame), frame["date"].iloc[0], frame["date"].iloc[-1])]
    assert len(rows(warehouse, "SELECT * FROM latest_forecasts")) == 7 * 12
    # naive's h-step test errors, recomputed from the CSV: they grow with h, and so do its bands
    naive = rows(
        warehouse, "SELECT horizon, rmse, n FROM horizon_metrics WHERE model = 'naive' ORDER BY 1"
    )
    expected = []
    for h in range(1, 13):
        origins = np.arange(len(close) - n_test - 1, len(close) - h)  # last close before target
        errors = close[origins + h] - close[origins]
        expected.append((h, pytest.approx(np.sqrt(np.mean(errors**2))), n_test - h + 1))
    assert naive == expected
    assert all(a[1] < b[1] for a, b in itertools.pairwise(naive))
    width = rows(
        warehouse,
        "SELECT horizon, ln(upper_95 / lower_95) FROM forecasts WHERE model = 'naive'"
        " AND horizon IN (1, 12) ORDER BY horizon",
    )
    assert width[1][1] > 2 * width[0][1]
    # the rolling evaluation: every month from 1975-01, every h; naive's errors from the CSV
    months = pd.DatetimeIndex(frame["date"])
    start = int(np.searchsorted(months, pd.Timestamp("1975-01-01")))
    for h in (1, 5, 12):
        got = rows(
            warehouse,
            "SELECT forecast_month::VARCHAR, point, actual FROM rolling_predictions"
            " WHERE model = 'naive' AND horizon = ? ORDER BY forecast_month",
            h,
        )
        made = np.arange(start, len(close) - h)
        assert [g[0] for g in got] == list(frame["date"].iloc[made])
        np.testing.assert_array_equal([g[1] for g in got], close[made])
        np.testing.assert_array_equal([g[2] for g in got], close[made + h])
    per_model = rows(
        warehouse,
        "SELECT model, count(DISTINCT horizon), min(n), max(n) FROM rolling_metrics GROUP BY 1",
    )
    assert {m: (hs, lo, hi) for m, hs, lo, hi in per_model} == dict.fromkeys(
        ["naive", "drift", *KERAS_MODELS, "mean"],
        (12, len(close) - start - 12, len(close) - start - 1),
    )
    ((gap, n_mean),) = rows(
        warehouse,
        "SELECT max(abs(m.point - c.avg)), count(*) FROM rolling_predictions AS m JOIN ("
        " SELECT forecast_month, horizon, avg(point) AS avg FROM rolling_predictions"
        " WHERE model NOT IN ('naive', 'mean') GROUP BY ALL) AS c USING (forecast_month, horizon)"
        " WHERE m.model = 'mean'",
    )
    assert gap < 1e-6 and n_mean == sum(len(close) - start - h for h in range(1, 13))
    champions = rows(warehouse, "SELECT horizon, model FROM champions ORDER BY horizon")
    assert [h for h, _ in champions] == list(range(1, 13))
    assert rows(
        warehouse, "SELECT count(*) FROM comparisons WHERE split = 'rolling' AND horizon = 12"
    ) == [(len(tested),)]
    coverage = rows(warehouse, "SELECT min(coverage_95), max(coverage_95) FROM rolling_metrics")[0]
    assert 0.8 < coverage[0] <= coverage[1] < 1.0
    assert rows(
        warehouse,
        "SELECT count(*) FROM rolling_metrics WHERE NOT (coverage_95_low <= coverage_95"
        " AND coverage_95 <= coverage_95_high AND coverage_80_low <= coverage_80"
        " AND coverage_80 <= coverage_80_high)",
    ) == [(0,)]
    # one verdict per horizon: the champion is kept, and no kept model is cheaper
    verdicts = rows(warehouse, "SELECT model, best_model, kept FROM champions")
    for model, best, kept in verdicts:
        assert kept.split(",")[0] == model and best in kept.split(",")
    # every live path widens with h and stays inside the index's own h-month moves
    live = rows(
        warehouse,
        "SELECT model, horizon, point, lower_80, upper_80, lower_95, upper_95 FROM forecasts"
        " ORDER BY model, horizon",
    )
    for model in {r[0] for r in live}:
        path = np.array([r[1:] for r in live if r[0] == model], dtype=np.float64)
        h, point, low80, high80, low95, high95 = path.T
        for distance in (point / low80, high80 / point, point / low95, high95 / point):
            assert np.all(np.diff(np.log(distance)) >= -1e-12), model
        for k, months in enumerate(h.astype(int)):
            moves = close[months:] / close[:-months]
            assert close[-1] * moves.min() <= low95[k] + 1e-6
            assert high95[k] <= close[-1] * moves.max() + 1e-6


def _bad_csv() -> bytes:
    frame = synthetic_prices(150, seed=2).astype({"close": object})
    frame.loc[20, "close"] = "-3"
    frame.loc[40, "date"] = "yesterday"
    return to_csv_bytes(frame)


@pytest.mark.parametrize(
    ("route", "message", "n_failures"),
    [
        (Route(body=_bad_csv()), "validation failed", 3),  # + the gap left by the bad date
        (Route(status=404), "HTTP 404", 0),
        (Route(status=500), "HTTP 500", 0),
        (Route(body=b"<html><body>login</body></html>"), "HTML page", 0),
    ],
    ids=["schema", "404", "500", "html"],
)
def test_failed_run_leaves_only_its_run_row_and_keeps_previous_results(
    http_server: LocalServer,
    warehouse_with_a_run: Path,
    tmp_path: Path,
    route: Route,
    message: str,
    n_failures: int,
) -> None:
    warehouse = warehouse_with_a_run
    before = counts(warehouse)
    assert before["runs"] == 1 and before["forecasts"] == 2 * 12
    forecasts_before = rows(warehouse, "SELECT * FROM latest_forecasts")

    bad = http_server.serve("/bad.csv", route)
    state = monthly_retrain(settings(bad, warehouse, models="naive"), return_state=True)
    assert state.is_failed()
    assert message in state.message
    after = counts(warehouse)
    assert after == {**before, "runs": before["runs"] + 1, "validation_failures": n_failures}
    ((status, error),) = rows(
        warehouse, "SELECT status, error FROM runs WHERE status <> 'completed'"
    )
    assert status == "failed" and message in error
    assert rows(warehouse, "SELECT * FROM latest_forecasts") == forecasts_before
    assert not any((tmp_path / "models").glob("*/*.keras"))


@pytest.mark.parametrize("first", ["refused", "500", "invalid"])
def test_a_second_source_in_another_layout_answers_when_the_first_fails(
    http_server: LocalServer, tmp_path: Path, first: str
) -> None:
    series = synthetic_prices(150, seed=5)
    hub = to_csv_bytes(series.rename(columns={"date": "Date", "close": "SP500"}))
    second = http_server.serve("/hub.csv", Route(body=hub)) + "#date=Date&value=SP500"
    down = {
        "refused": f"http://127.0.0.1:{free_port()}/s.csv",
        "500": http_server.serve("/err.csv", Route(status=500)),
        "invalid": http_server.serve("/bad.csv", Route(body=_bad_csv())),
    }[first]
    warehouse = tmp_path / "w.duckdb"
    config = settings(down, warehouse, models="naive")
    config = config.model_copy(update={"source": (down, second)})
    state = monthly_retrain(config, return_state=True)
    assert state.is_completed(), state.message
    ((source, passed_over),) = rows(warehouse, "SELECT source, passed_over FROM snapshots")
    assert source == second
    reason = {"refused": "ConnectError", "500": "HTTP 500", "invalid": "failed validation"}
    assert passed_over.startswith(f"{down}: ") and reason[first] in passed_over
    assert rows(warehouse, "SELECT count(*) FROM prices") == [(150,)]
    assert rows(warehouse, "SELECT count(*) FROM validation_failures") == [(0,)]


def test_scorecard_scores_each_forecast_when_its_month_arrives(
    http_server: LocalServer, tmp_path: Path
) -> None:
    series = synthetic_prices(153, seed=8)
    warehouse = tmp_path / "w.duckdb"
    first = http_server.serve("/m1.csv", Route(body=to_csv_bytes(series.head(150))))
    assert monthly_retrain(
        settings(first, warehouse, models="naive,drift"), return_state=True
    ).is_completed()
    assert rows(warehouse, "SELECT count(*) FROM forecast_scorecard") == [(0,)]
    (first_run,) = rows(warehouse, "SELECT run_id FROM runs")[0]
    forecasts = {
        (m, h): p for m, h, p in rows(warehouse, "SELECT model, horizon, point FROM forecasts")
    }

    # three months later: the first run's 1-, 2- and 3-month forecasts are scored
    later = http_server.serve("/m2.csv", Route(body=to_csv_bytes(series)))
    assert monthly_retrain(
        settings(later, warehouse, models="naive,drift"), return_state=True
    ).is_completed()
    scored = rows(
        warehouse,
        "SELECT run_id, model, horizon, target_month::VARCHAR, actual, error"
        " FROM forecast_scorecard ORDER BY model, horizon",
    )
    assert [r[:4] for r in scored] == [
        (first_run, model, h, series["date"].iloc[149 + h])
        for model in ("drift", "naive")
        for h in (1, 2, 3)
    ]
    for _, model, h, _, got, error in scored:
        actual = float(series["close"].iloc[149 + h])
        assert got == pytest.approx(actual)
        assert error == pytest.approx(actual - forecasts[model, h])
    history = rows(warehouse, "SELECT model, count(*) FROM model_history GROUP BY 1 ORDER BY 1")
    assert history == [("drift", 2), ("naive", 2)]
    assert rows(warehouse, "SELECT count(*) FROM revisions") == [(0,)]

    # the provider revises two past months, one of them a scored target: exactly those
    # two are recorded, and the scorecard scores against the revised close and says so
    (second_run,) = rows(warehouse, "SELECT run_id FROM runs ORDER BY finished_at DESC")[0]
    revised = series.copy()
    revised.loc[[20, 150], "close"] *= [1.02, 0.99]
    again = http_server.serve("/m3.csv", Route(body=to_csv_bytes(revised)))
    third = monthly_retrain(settings(again, warehouse, models="naive,drift"), return_state=True)
    assert third.is_completed() and third.result().status == "completed"
    found = rows(
        warehouse,
        "SELECT month::VARCHAR, previous_close, close, relative_change, since_run_id"
        " FROM revisions",
    )
    assert [(m, since) for m, *_, since in found] == [
        (series["date"].iloc[20], second_run),
        (series["date"].iloc[150], second_run),
    ]
    assert [round(change, 9) for *_, change, _ in found] == [0.02, -0.01]
    marked = rows(
        warehouse,
        "SELECT target_month::VARCHAR, actual, actual_revised FROM forecast_scorecard"
        " WHERE run_id = ? AND model = 'naive' ORDER BY horizon",
        first_run,
    )
    assert [(m, r) for m, _, r in marked] == [
        (series["date"].iloc[150], True),
        (series["date"].iloc[151], False),
        (series["date"].iloc[152], False),
    ]
    assert marked[0][1] == pytest.approx(revised["close"].iloc[150])
    report = read_run_report(warehouse)
    revised_actuals = report.scorecard.set_index(["model", "horizon"])["revised"]
    assert revised_actuals[("naive", 1)] == 1 and revised_actuals[("naive", 2)] == 0
    notes = data_notes(report.source, report.passed_over, report.revisions)
    assert notes == [
        f"Data from {again}.",
        f"2 past months changed since run {second_run}, largest"
        f" {series['date'].iloc[20][:7]} +2.0 %",
    ]


def test_tags_label_the_flow_run_but_not_its_task_runs(
    http_server: LocalServer, tmp_path: Path
) -> None:
    from prefect import tags
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    url = http_server.serve("/t.csv", Route(body=to_csv_bytes(synthetic_prices(60, seed=4))))
    with tags("sp500", "scaling:window"):
        state = monthly_retrain(
            settings(url, tmp_path / "w.duckdb", models="naive", horizon=3), return_state=True
        )
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    assert {"sp500", "scaling:window"} <= set(run.tags)
    assert {t.name for t in task_runs} >= {
        "fit-naive",
        "evaluate-naive",
        "forecast-naive",
    }
    assert [t.tags for t in task_runs] == [[]] * len(task_runs)


def test_a_variant_runs_beside_its_base_and_is_tested_against_it(
    http_server: LocalServer, tmp_path: Path
) -> None:
    url = http_server.serve("/v.csv", Route(body=to_csv_bytes(synthetic_prices(90, seed=5))))
    warehouse = tmp_path / "w.duckdb"
    config = settings(
        url, warehouse, models="naive,conv1d_lstm,conv1d_lstm[kernel_size=5,filters=64]", seeds=1
    )
    state = monthly_retrain(config, return_state=True)
    assert state.is_completed(), state.message
    variant = "conv1d_lstm[filters=64,kernel_size=5]"  # the canonical name
    assert rows(warehouse, "SELECT DISTINCT model, n_params FROM models ORDER BY 1") == [
        ("conv1d_lstm", 8993),
        (variant, 13_345),
        ("naive", 0),
    ]
    assert rows(
        warehouse, "SELECT model, baseline FROM comparisons WHERE split = 'test' ORDER BY ALL"
    ) == [("conv1d_lstm", "naive"), (variant, "conv1d_lstm"), (variant, "naive")]
    ((path,),) = rows(
        warehouse, "SELECT artifact_path FROM models WHERE model = ? AND role = 'forecast'", variant
    )
    assert Path(path).name == f"{variant}-forecast-seed42.keras"
    assert (warehouse.parent / path).is_file()


def test_models_fitted_side_by_side_in_processes_match_the_run_in_turn(
    http_server: LocalServer, tmp_path: Path
) -> None:
    """``--task-runner process``: each model fitted in a worker process, same numbers.

    As a new user (no Prefect API configured): the CLI's temporary server is the only one.
    """
    import os
    import subprocess
    import sys

    url = http_server.serve("/p.csv", Route(body=to_csv_bytes(synthetic_prices(150, seed=8))))
    options = {"models": "naive,drift,gru", "epochs": 2, "seeds": 2}
    reference = tmp_path / "in_turn.duckdb"
    state = monthly_retrain(settings(url, reference, **options), return_state=True)
    assert state.is_completed(), state.message

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SP500_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # a new user: no Prefect API set
    side_by_side = tmp_path / "processes.duckdb"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("sp500")),
            *("run", "--source", url, "--warehouse", str(side_by_side)),
            *("--models", "naive,drift,gru", "--epochs", "2", "--seeds", "2"),
            *("--task-runner", "process", "--workers", "2"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # one temporary server, the CLI's: the worker processes report to it
    assert (done.stdout + done.stderr).count("Starting temporary server") == 1
    for sql in (
        "SELECT model, origin_month, forecast_month, horizon, point, lower_95, upper_95"
        " FROM rolling_predictions ORDER BY ALL",
        "SELECT model, month, predicted FROM predictions ORDER BY ALL",
        "SELECT model, horizon, point, lower_95, upper_95 FROM forecasts ORDER BY ALL",
        "SELECT horizon, model, best_model FROM rolling_champions ORDER BY horizon",
    ):
        ours, theirs = rows(side_by_side, sql), rows(reference, sql)
        assert len(ours) == len(theirs) > 0, sql
        for a, b in zip(ours, theirs, strict=True):
            numbers = [i for i, v in enumerate(b) if isinstance(v, float)]
            assert [v for i, v in enumerate(a) if i not in numbers] == [
                v for i, v in enumerate(b) if i not in numbers
            ], sql
            assert [a[i] for i in numbers] == pytest.approx([b[i] for i in numbers], rel=1e-9)
