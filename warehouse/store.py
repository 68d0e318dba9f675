"""The only module that opens DuckDB: migrations, run bookkeeping, one-transaction writes."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from core.errors import WarehouseError

if TYPE_CHECKING:  # frames pass through; pandas itself is imported where one is made
    import pandas as pd

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: The storage format of a new warehouse: DuckDB 1.4.0 and every later release read it, so
#: SQL clients need not be the exact DuckDB of the pipeline. DuckDB keeps a file's format
#: on every later write, whatever the writing version.
STORAGE_VERSION = "v1.4.0"
OLDEST_READER = "1.4.0"


def utc_now() -> datetime:
    """Current UTC time without tzinfo, as stored in TIMESTAMP columns."""
    return datetime.now(UTC).replace(tzinfo=None)


def check_writable(path: Path) -> None:
    """Fail with one line unless the warehouse's directory exists and accepts new files."""
    directory = Path(path).parent
    if not directory.is_dir():
        raise WarehouseError(f"warehouse directory does not exist: {directory}")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise WarehouseError(
            f"warehouse directory is not writable: {directory} ({exc.strerror})"
        ) from None
    if Path(path).exists() and not os.access(path, os.W_OK):
        raise WarehouseError(f"warehouse file is read-only: {path}")


BUSY_SECONDS = 15.0
LATEST_COMPLETED_RUN = (
    "SELECT run_id, snapshot_id, params FROM runs WHERE status = 'completed' AND kind = 'retrain'"
    " ORDER BY finished_at DESC, run_id DESC LIMIT 1"
)


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, busy_seconds: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse; DuckDB's lock and I/O errors become one-line WarehouseErrors.

    DuckDB lets one process write at a time, and a writer also shuts readers out. Runs and
    queries keep their connections short, so a lock conflict is retried for up to
    ``busy_seconds`` (default: the module's ``BUSY_SECONDS``, read at call time so tests can
    shorten it) before it is reported as busy.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseError(f"no warehouse at {path}; run `sp500 run` first")
    if not read_only:
        check_writable(path)
    deadline = time.monotonic() + (BUSY_SECONDS if busy_seconds is None else busy_seconds)
    while True:
        try:
            con = duckdb.connect(
                str(path),
                read_only=read_only,
                config={"storage_compatibility_version": STORAGE_VERSION},
            )
            break
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            if "lock" not in first.lower():
                raise WarehouseError(f"cannot open warehouse {path}: {first}") from None
            if time.monotonic() >= deadline:
                raise WarehouseError(
                    f"warehouse busy: {path} is open for writing by another process;"
                    " retry in a moment"
                ) from None
            time.sleep(0.1)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run a block in one transaction: all of it is committed, or none of it."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def migration_files() -> list[tuple[int, str, Path]]:
    """Numbered ``NNN_name.sql`` files in order, as (version, name, path)."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        found.append((int(number), name, path))
    return found


def migrate(path: Path) -> int:
    """Create or upgrade the warehouse schema; return the schema version now in force."""
    with connect(path) as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        applied = {row[0] for row in con.execute("SELECT version FROM schema_version").fetchall()}
        for version, name, sql_path in migration_files():
            if version in applied:
                continue
            with transaction(con):
                con.execute(sql_path.read_text())
                con.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)", [version, name, utc_now()]
                )
        return int(con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0])


def start_run(
    path: Path,
    run_id: str,
    flow_run_id: str | None,
    params: dict[str, object],
    kind: str = "retrain",
) -> None:
    """Insert the run's row with status ``running`` (``kind``: ``retrain`` or ``backtest``)."""
    with connect(path) as con:
        con.execute(
            "INSERT INTO runs (run_id, flow_run_id, status, started_at, params, kind)"
            " VALUES (?, ?, 'running', ?, ?, ?)",
            [run_id, flow_run_id, utc_now(), json.dumps(params, sort_keys=True), kind],
        )


def recover_crashed_runs(path: Path, by_run_id: str) -> list[str]:
    """Mark runs left ``running`` by a dead process as ``failed``; return their ids.

    Call only while holding the run lock: then no other live process owns such a row.
    """
    crashed = f"crashed: the process ended before finishing (seen by {by_run_id})"
    with connect(path) as con:
        rows = con.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?, error = ?, reason = ?"
            " WHERE status = 'running' RETURNING run_id",
            [utc_now(), crashed, crashed],
        ).fetchall()
    return sorted(row[0] for row in rows)


OUTCOMES = ("unchanged", "invalid")  # a run that ends without results or an error


def close_run(
    path: Path, run_id: str, status: str, reason: str, snapshot_id: str | None = None
) -> None:
    """Mark a ``running`` run ``unchanged`` or ``invalid`` with its one-line reason.

    ``snapshot_id``: the data it looked at, when it got that far (an unchanged run's is the
    completed run's it matched).

    Raises:
        ValueError: ``status`` is not one of ``OUTCOMES``.
    """
    if status not in OUTCOMES:
        raise ValueError(f"a run closes as one of {', '.join(OUTCOMES)}, not {status!r}")
    with connect(path) as con:
        con.execute(
            "UPDATE runs SET status = ?, finished_at = ?, reason = ?, snapshot_id = ?"
            " WHERE run_id = ? AND status = 'running'",
            [status, utc_now(), reason, snapshot_id, run_id],
        )


def fail_run(path: Path, run_id: str, error: str, failures: pd.DataFrame | None = None) -> None:
    """Mark a run ``failed`` with its error and keep its validation failures, in one transaction."""
    with connect(path) as con, transaction(con):
        con.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?, error = ?, reason = ?"
            " WHERE run_id = ? AND status = 'running'",
            [utc_now(), error, error, run_id],
        )
        if failures is not None and len(failures):
            _insert_frame(
                con,
                "validation_failures",
                run_id,
                failures,
                ["check_name", "column_name", "failure_case", "row_index"],
            )


@dataclass(frozen=True)
class CompletedRun:
    """The identity of a completed run: what data and which parameters produced it."""

    run_id: str
    snapshot_id: str
    params: dict[str, object]


def last_completed_run(path: Path) -> CompletedRun | None:
    """The most recently finished completed run, if any."""
    with connect(path) as con:
        found = con.execute(LATEST_COMPLETED_RUN).fetchall()
    if not found:
        return None
    row = found[0]
    return CompletedRun(run_id=row[0], snapshot_id=row[1], params=json.loads(row[2]))


def previous_prices(path: Path) -> tuple[str, pd.DataFrame] | None:
    """The last completed monthly run's id and the ``month, close`` of its snapshot."""
    with connect(path) as con:
        found = con.execute(LATEST_COMPLETED_RUN).fetchall()
        if not found:
            return None
        frame = con.execute(
            "SELECT month, close FROM prices WHERE snapshot_id = ? ORDER BY month", [found[0][1]]
        ).df()
    return found[0][0], frame


@dataclass(frozen=True)
class RunChanges:
    """What changed with a completed run against the completed monthly run before it."""

    previous_run_id: str | None
    # forecasts of earlier runs first scored with this run's data whose actual fell outside
    # the 95 % band: the freshest forecast per model and month (model, horizon,
    # target_month, actual, lower_95, upper_95, run_id)
    missed: pd.DataFrame
    previous_champions: pd.DataFrame  # horizon, model: the previous run's rolling champions


def run_changes(path: Path, run_id: str) -> RunChanges:
    """Compare completed run ``run_id`` with the completed monthly run that finished before it."""
    with connect(path, read_only=True) as con:
        previous = con.execute(
            "SELECT r.run_id, s.last_month FROM runs r JOIN snapshots s USING (snapshot_id)"
            " WHERE r.status = 'completed' AND r.kind = 'retrain' AND r.run_id <> ?"
            " AND r.finished_at < (SELECT finished_at FROM runs WHERE run_id = ?)"
            " ORDER BY r.finished_at DESC, r.run_id DESC LIMIT 1",
            [run_id, run_id],
        ).fetchall()
        if not previous:
            return RunChanges(
                None, _empty_frame(MISSED_COLUMNS), _empty_frame(["horizon", "model"])
            )
        previous_id, last_month = previous[0]
        missed = con.execute(
            f"SELECT {', '.join(MISSED_COLUMNS)} FROM ("
            "  SELECT *, row_number() OVER ("
            "    PARTITION BY model, target_month ORDER BY horizon, run_id DESC) AS freshest"
            "  FROM forecast_scorecard"
            "  WHERE run_id <> ? AND target_month > ? AND lower_95 IS NOT NULL"
            ") WHERE freshest = 1 AND NOT inside_95 ORDER BY target_month, model",
            [run_id, last_month],
        ).df()
        champions = con.execute(
            "SELECT horizon, model FROM rolling_champions WHERE run_id = ? ORDER BY horizon",
            [previous_id],
        ).df()
    return RunChanges(previous_id, missed, champions)


MISSED_COLUMNS = ["model", "horizon", "target_month", "actual", "lower_95", "upper_95", "run_id"]


def _empty_frame(columns: list[str]) -> pd.DataFrame:
    import pandas as pd  # noqa: PLC0415 (sp500 query stays free of pandas)

    return pd.DataFrame(columns=columns)


@dataclass(frozen=True)
class RunOutput:
    """Everything one completed run writes, as frames without the run_id column."""

    run_id: str
    snapshot_id: str
    source: str
    fetched_at: datetime
    prices: pd.DataFrame  # month, close
    models: pd.DataFrame  # TABLE_COLUMNS["models"]: one row per model, role and seed
    metrics: pd.DataFrame  # model, split, rmse, mae, mape, mase, theil_u2, directional_accuracy, n
    predictions: pd.DataFrame  # model, month, actual, predicted
    forecasts: pd.DataFrame  # model, target_month, horizon, point, lower/upper 80/95
    seed_metrics: pd.DataFrame  # model, seed, split, rmse, mae, theil_u2
    comparisons: pd.DataFrame  # model, baseline, split, horizon, dm_stat, dm_pvalue, n
    horizon_metrics: pd.DataFrame  # model, split, horizon, rmse, mae, theil_u2, n
    # the rolling-origin evaluation: TABLE_COLUMNS[...]; empty when it did not run
    rolling_predictions: pd.DataFrame = field(default_factory=lambda: _empty("rolling_predictions"))
    rolling_metrics: pd.DataFrame = field(default_factory=lambda: _empty("rolling_metrics"))
    rolling_champions: pd.DataFrame = field(default_factory=lambda: _empty("rolling_champions"))
    # months whose close changed since the previous completed run (tasks/data/revisions.py)
    revisions: pd.DataFrame = field(default_factory=lambda: _empty("revisions"))
    passed_over: str | None = None  # sources tried first, "source: reason" per line


TABLE_COLUMNS: dict[str, list[str]] = {
    "models": [
        "model",
        "role",
        "seed",
        "trained_through",
        "n_params",
        "epochs",
        "train_seconds",
        "artifact_path",
        "artifact_sha256",
    ],
    "metrics": [
        "model",
        "split",
        "rmse",
        "mae",
        "mape",
        "mase",
        "theil_u2",
        "directional_accuracy",
        "n",
    ],
    "predictions": ["model", "month", "actual", "predicted"],
    "forecasts": [
        "model",
        "target_month",
        "horizon",
        "point",
        "lower_80",
        "upper_80",
        "lower_95",
        "upper_95",
    ],
    "seed_metrics": ["model", "seed", "split", "rmse", "mae", "theil_u2"],
    "comparisons": ["model", "baseline", "split", "horizon", "dm_stat", "dm_pvalue", "n"],
    "horizon_metrics": ["model", "split", "horizon", "rmse", "mae", "theil_u2", "n"],
    "rolling_predictions": [
        "model",
        "origin_month",
        "forecast_month",
        "horizon",
        "target_month",
        "point",
        "lower_80",
        "upper_80",
        "lower_95",
        "upper_95",
        "actual",
    ],
    "rolling_metrics": [
        "model",
        "horizon",
        "n",
        "rmse",
        "mae",
        "theil_u2",
        "coverage_80",
        "coverage_95",
        "interval_score_80",
        "interval_score_95",
        "width_95",
        "coverage_80_low",
        "coverage_80_high",
        "coverage_95_low",
        "coverage_95_high",
    ],
    "rolling_champions": [
        "horizon",
        "model",
        "rmse",
        "dm_pvalue",
        "best_model",
        "kept",
        "dm_pvalue_vs_best",
    ],
    "revisions": ["month", "previous_close", "close", "relative_change", "since_run_id"],
}


def _empty(table: str) -> pd.DataFrame:
    return _empty_frame(TABLE_COLUMNS[table])


def _insert_frame(
    con: duckdb.DuckDBPyConnection,
    table: str,
    run_id: str,
    frame: pd.DataFrame,
    columns: list[str],
) -> None:
    # Table and column names come from the constants above, never from data; values are
    # read from the registered frame and the run id is a bound parameter.
    con.register("incoming", frame[columns])
    try:
        con.execute(
            f"INSERT INTO {table} (run_id, {', '.join(columns)})"
            f" SELECT ?, {', '.join(columns)} FROM incoming",
            [run_id],
        )
    finally:
        con.unregister("incoming")


def _insert_snapshot(con: duckdb.DuckDBPyConnection, output: RunOutput | BacktestOutput) -> None:
    """Store a downloaded snapshot and its prices unless the same bytes are stored already."""
    fetched_at, prices = output.fetched_at, output.prices
    # fetchall, not fetchone: DuckDB 2 keeps a half-read result open on the connection
    known = con.execute(
        "SELECT count(*) FROM snapshots WHERE snapshot_id = ?", [output.snapshot_id]
    ).fetchall()[0][0]
    if known:
        return
    con.execute(
        "INSERT INTO snapshots (snapshot_id, source, fetched_at, n_rows, first_month,"
        " last_month, passed_over) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            output.snapshot_id,
            output.source,
            fetched_at.astimezone(UTC).replace(tzinfo=None) if fetched_at.tzinfo else fetched_at,
            len(prices),
            prices["month"].iloc[0].date(),
            prices["month"].iloc[-1].date(),
            output.passed_over,
        ],
    )
    con.register("incoming", prices[["month", "close"]])
    try:
        con.execute(
            "INSERT INTO prices (snapshot_id, month, close) SELECT ?, month, close FROM incoming",
            [output.snapshot_id],
        )
    finally:
        con.unregister("incoming")


def _complete_run(con: duckdb.DuckDBPyConnection, run_id: str, snapshot_id: str) -> None:
    updated = con.execute(
        "UPDATE runs SET status = 'completed', finished_at = ?, snapshot_id = ?, error = NULL"
        " WHERE run_id = ? AND status = 'running' RETURNING run_id",
        [utc_now(), snapshot_id, run_id],
    ).fetchall()
    if not updated:
        raise WarehouseError(f"run {run_id} is not running any more; nothing written")


def write_run(path: Path, output: RunOutput) -> None:
    """Write a completed run's snapshot, results and status in one transaction."""
    with connect(path) as con, transaction(con):
        _insert_snapshot(con, output)
        for table, columns in TABLE_COLUMNS.items():
            _insert_frame(con, table, output.run_id, getattr(output, table), columns)
        _complete_run(con, output.run_id, output.snapshot_id)


@dataclass(frozen=True)
class BacktestOutput:
    """Everything one completed backtest writes, as frames without the run_id column."""

    run_id: str
    snapshot_id: str
    source: str
    fetched_at: datetime
    prices: pd.DataFrame  # month, close
    predictions: pd.DataFrame  # model, origin_month, target_month, actual, predicted, ...
    metrics: pd.DataFrame  # model, split ('backtest'), rmse, mae, ..., n
    comparisons: pd.DataFrame  # model, baseline, split, dm_stat, dm_pvalue, n
    passed_over: str | None = None  # sources tried first, "source: reason" per line


BACKTEST_TABLE_COLUMNS: dict[str, list[str]] = {
    "backtest_predictions": [
        "model",
        "origin_month",
        "target_month",
        "actual",
        "predicted",
        "train_seconds",
        "fit",
        "seed",
        "lower_80",
        "upper_80",
        "lower_95",
        "upper_95",
    ],
    "metrics": TABLE_COLUMNS["metrics"],
    "comparisons": TABLE_COLUMNS["comparisons"],
}


def write_backtest(path: Path, output: BacktestOutput) -> None:
    """Write a finished backtest's results and mark its ``running`` row completed, at once."""
    frames = {
        "backtest_predictions": output.predictions,
        "metrics": output.metrics,
        "comparisons": output.comparisons,
    }
    with connect(path) as con, transaction(con):
        _insert_snapshot(con, output)
        for table, columns in BACKTEST_TABLE_COLUMNS.items():
            _insert_frame(con, table, output.run_id, frames[table], columns)
        _complete_run(con, output.run_id, output.snapshot_id)


def query(
    path: Path, sql: str, busy_seconds: float = 5.0
) -> tuple[list[str], list[tuple[object, ...]]]:
    """Run one SQL statement on a read-only connection; return column names and rows."""
    with connect(path, read_only=True, busy_seconds=busy_seconds) as con:
        try:
            cursor = con.execute(sql)
        except duckdb.Error as exc:
            raise WarehouseError(f"query failed: {str(exc).splitlines()[0]}") from None
        if cursor.description is None:
            return [], []
        return [d[0] for d in cursor.description], cursor.fetchall()


@dataclass(frozen=True)
class RunReport:
    """A completed run's leaderboard, predictions, forecasts and prices, plus the scorecard."""

    run_id: str
    leaderboard: list[dict[str, Any]]
    prices: pd.DataFrame  # month, close of the run's snapshot
    predictions: pd.DataFrame  # model, month, actual, predicted
    forecasts: pd.DataFrame  # model, target_month, horizon, point, bounds
    # model, horizon, n, mean_abs_pct_error, coverage_80, coverage_95, revised (actuals a
    # provider revised after the forecast; from migration 008)
    scorecard: pd.DataFrame
    comparisons: pd.DataFrame  # model, baseline, split ('test'), dm_stat, dm_pvalue, n
    champions: pd.DataFrame  # TABLE_COLUMNS["rolling_champions"]; empty before 007
    champion_history: pd.DataFrame  # each horizon's champion's rolling forecasts with bands
    source: str = ""  # the source that answered
    passed_over: str | None = None  # sources tried first, "source: reason" per line
    revisions: pd.DataFrame | None = None  # TABLE_COLUMNS["revisions"]; None before 008


def read_run_report(path: Path, run_id: str | None = None) -> RunReport:
    """Read what ``sp500 report`` shows for ``run_id`` (default: latest completed run)."""
    with connect(path, read_only=True, busy_seconds=5.0) as con:
        if run_id is None:
            found = con.execute(LATEST_COMPLETED_RUN).fetchall()
            if not found:
                raise WarehouseError(f"no completed run in {path} yet; run `sp500 run` first")
            run_id = found[0][0]
        elif not con.execute(
            "SELECT 1 FROM runs WHERE run_id = ? AND status = 'completed' AND kind = 'retrain'",
            [run_id],
        ).fetchall():
            raise WarehouseError(f"no completed run {run_id!r} in {path}")
        board = con.execute(
            "SELECT * EXCLUDE (run_id) FROM run_leaderboard WHERE run_id = ? ORDER BY rank, model",
            [run_id],
        ).df()
        prices = con.execute(
            "SELECT p.month, p.close FROM prices p JOIN runs r USING (snapshot_id)"
            " WHERE r.run_id = ? ORDER BY p.month",
            [run_id],
        ).df()
        predictions = con.execute(
            "SELECT model, month, actual, predicted FROM predictions WHERE run_id = ?"
            " ORDER BY model, month",
            [run_id],
        ).df()
        forecasts = con.execute(
            "SELECT f.model, f.target_month, f.horizon, f.point, f.lower_80, f.upper_80,"
            " f.lower_95, f.upper_95 FROM forecasts f"
            " JOIN metrics m ON m.run_id = f.run_id AND m.model = f.model AND m.split = 'test'"
            " WHERE f.run_id = ? ORDER BY m.rmse, f.model, f.horizon",
            [run_id],
        ).df()
        comparisons = con.execute(
            "SELECT model, baseline, split, dm_stat, dm_pvalue, n FROM comparisons"
            " WHERE run_id = ? AND split = 'test' ORDER BY rowid",
            [run_id],
        ).df()
        champions = con.execute(
            f"SELECT {_select_list(con, 'rolling_champions')} FROM rolling_champions"
            " WHERE run_id = ? ORDER BY horizon",
            [run_id],
        ).df()
        # the drawn path's history: each horizon's champion's rolling forecasts
        champion_history = con.execute(
            "SELECT p.model, p.forecast_month, p.horizon, p.target_month, p.point,"
            " p.lower_80, p.upper_80, p.lower_95, p.upper_95, p.actual"
            " FROM rolling_predictions p JOIN rolling_champions c"
            " ON c.run_id = p.run_id AND c.model = p.model AND c.horizon = p.horizon"
            " WHERE p.run_id = ? ORDER BY p.horizon, p.forecast_month",
            [run_id],
        ).df()
        snapshot = con.execute(
            "SELECT s.* FROM snapshots s JOIN runs r USING (snapshot_id) WHERE r.run_id = ?",
            [run_id],
        ).df()
        revisions = None
        if _has_table(con, "revisions"):
            revisions = con.execute(
                f"SELECT {', '.join(TABLE_COLUMNS['revisions'])} FROM revisions"
                " WHERE run_id = ? ORDER BY month",
                [run_id],
            ).df()
        # how many scored actuals a provider revised since (the column exists from 008 on)
        revised = ", sum(actual_revised::INTEGER) AS revised" if revisions is not None else ""
        scorecard = con.execute(
            "SELECT model, horizon, count(*) AS n, avg(abs_pct_error) AS mean_abs_pct_error,"
            " avg(inside_80::INTEGER) AS coverage_80, avg(inside_95::INTEGER) AS coverage_95"
            f"{revised} FROM forecast_scorecard GROUP BY model, horizon"
            " ORDER BY horizon, mean_abs_pct_error, model"
        ).df()
    import pandas as pd  # noqa: PLC0415 (sp500 query stays free of pandas)

    for frame, column in (
        (prices, "month"),
        (predictions, "month"),
        (forecasts, "target_month"),
        (champion_history, "forecast_month"),
        (champion_history, "target_month"),
    ):
        frame[column] = pd.to_datetime(frame[column])
    return RunReport(
        run_id=run_id,
        leaderboard=board.to_dict("records"),
        prices=prices,
        predictions=predictions,
        forecasts=forecasts,
        scorecard=scorecard,
        comparisons=comparisons,
        champions=champions,
        champion_history=champion_history,
        source=str(snapshot["source"].iloc[0]) if len(snapshot) else "",
        passed_over=(
            snapshot["passed_over"].iloc[0]
            if "passed_over" in snapshot.columns and snapshot["passed_over"].notna().any()
            else None
        ),
        revisions=revisions,
    )


def _select_list(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """``TABLE_COLUMNS[table]`` as a select list, NULL for columns a later migration adds.

    A warehouse opened read-only is not migrated, so a report of an older file still reads.
    """
    present = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
        ).fetchall()
    }
    return ", ".join(c if c in present else f"NULL AS {c}" for c in TABLE_COLUMNS[table])


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name])
    return found.fetchall()[0][0] > 0


def storage_version(path: Path) -> str:
    """The warehouse file's storage format as DuckDB names it, e.g. ``v1.4.0+``."""
    with connect(path, read_only=True) as con:
        ((tags,),) = con.execute(
            "SELECT tags FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchall()
    return str(tags.get("storage_version", "unknown"))


def convert_storage(path: Path) -> bool:
    """Rewrite the warehouse in ``STORAGE_VERSION``'s format; False if it already is in it.

    Every table, view, sequence and macro is copied (``COPY FROM DATABASE``) into a new file
    beside it, which then replaces the original in one rename: a failure leaves the original
    as it was. The caller holds the run lock, so no run writes meanwhile.

    Raises:
        WarehouseError: the warehouse is missing, busy or cannot be rewritten.
    """
    path = Path(path)
    if storage_version(path) == f"{STORAGE_VERSION}+":
        return False
    target = path.with_name(path.name + ".convert")
    target.unlink(missing_ok=True)
    con = duckdb.connect()  # in memory: both files are attached to it
    try:
        con.execute("ATTACH ? AS source (READ_ONLY)", [str(path)])
        con.execute(f"ATTACH ? AS converted (STORAGE_VERSION '{STORAGE_VERSION}')", [str(target)])
        con.execute("COPY FROM DATABASE source TO converted")
        con.execute("DETACH converted")
    except duckdb.Error as exc:
        target.unlink(missing_ok=True)
        raise WarehouseError(f"cannot convert {path}: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    os.replace(target, path)
    return True
