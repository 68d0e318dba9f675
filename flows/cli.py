"""The ``sp500`` command line: parses options into Settings and runs flows or queries."""

from __future__ import annotations

import contextvars
import csv
import io
import json
import logging
import math
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from core.errors import PipelineError

if TYPE_CHECKING:
    from core.settings import Settings

DEPLOYMENT_NAME = "monthly"

COMMAND_GROUPS = {
    "Running": ("run", "backtest", "serve"),
    "Results": ("report", "query"),
    "Operations": ("notify", "warehouse"),
}


class GroupedCommands(typer.core.TyperGroup):
    """``sp500 --help`` lists the commands under Running, Results and Operations."""

    def list_commands(self, ctx: Any) -> list[str]:  # click's Context, vendored by Typer
        """Commands in group order (any other command last)."""
        grouped = [name for names in COMMAND_GROUPS.values() for name in names]
        return grouped + [n for n in super().list_commands(ctx) if n not in grouped]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """One section of commands per group (``formatter``: click's HelpFormatter, vendored)."""
        for group, names in COMMAND_GROUPS.items():
            rows = []
            for name in names:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=formatter.width - 16)))
            if rows:
                with formatter.section(group):
                    formatter.write_dl(rows)


app = typer.Typer(
    name="sp500",
    cls=GroupedCommands,
    help="Monthly S&P 500 forecasting pipeline: Prefect flow, Keras models, DuckDB warehouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help and errors: no Rich import (it costs half a second)
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn an expected PipelineError into ``error: <message>`` and exit code 1."""
    try:
        yield
    except PipelineError as exc:
        raise _fail(str(exc)) from None


def _quiet_prefect_ephemeral_server() -> None:
    """Keep the temporary API server's internals (telemetry, SQLite shutdown noise) off screen.

    Without ``PREFECT_API_URL`` the run gets a throw-away local server; its own log lines
    are about the server, not the pipeline. Users of a real server keep theirs.
    Its start-up may take longer than Prefect's 20 s default on a busy machine (a backtest
    next door keeps both cores full), so it gets 90 s.
    """
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


class _ExpectedErrorFilter(logging.Filter):
    """Drop tracebacks from log records about expected PipelineErrors; keep the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PipelineError):
            record.exc_info = None
            record.exc_text = None
        return True


def _install_log_filter() -> None:
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logging.getLogger(name).addFilter(_ExpectedErrorFilter())


def _loading() -> None:
    """Say what the next seconds are for: the first line is ours, not TensorFlow's."""
    typer.echo("loading TensorFlow…", err=True)


def run_tags(settings: Settings) -> list[str]:
    """Tags every flow run carries in the UI."""
    return ["sp500", f"scaling:{settings.scaling}"]


# What `sp500 run` and `sp500 report` print of the leaderboard.
BOARD = [
    "rank",
    "model",
    "rmse",
    "rmse_std",
    "rmse_min",
    "rmse_max",
    "mae",
    "mase",
    "theil_u2",
    "dm_pvalue",
]


LESSON_TABLE = (
    "The lesson's table (test split; rmse of the seed ensemble, its members' spread beside"
    " it; dm_pvalue: Diebold-Mariano against naive). It crowns no champion."
)
# What `sp500 run` and `sp500 report` print of the verdict per horizon.
VERDICT = ["horizon", "model", "rmse", "best_model", "dm_pvalue_vs_best", "kept"]
VERDICT_TITLE = (
    "Champion per horizon (rolling evaluation since 1975 or --evaluate-from: the model with the"
    " fewest parameters among those not significantly worse than the lowest-RMSE model,"
    " one-sided Diebold-Mariano at 10 %)"
)


def _settings(overrides: dict[str, Any]) -> Settings:
    # pydantic-settings costs a few hundred ms to import: only commands that need it pay
    from pydantic import ValidationError  # noqa: PLC0415

    from core.settings import Settings  # noqa: PLC0415

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise _fail(f"invalid settings: {problems}", 2) from None


def _help(text: str, env: str | None, default: str | None) -> str:
    """One help style for every option: what it does, then [env VAR; default: D]."""
    notes = [f"env {env}" for _ in [env] if env] + [
        f"default: {default}" if default is not None else "no default"
    ]
    return f"{text} [{'; '.join(notes)}]"


def _opt(metavar: str, text: str, env: str | None, default: str | None) -> Any:
    """A ``typer.Option`` with its metavar and the one help style of ``_help``."""
    return typer.Option(metavar=metavar, help=_help(text, env, default))


# Defaults as help shows them; tests/flows/test_cli.py checks each against Settings.
WarehouseOption = Annotated[
    Path | None,
    _opt("PATH", "DuckDB file", "SP500_WAREHOUSE", "warehouse/sp500.duckdb"),
]
NotifyUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help=_help("http(s) URL the automations POST JSON to", "SP500_NOTIFY_URL", None),
    ),
]
SourceOption = Annotated[
    list[str] | None,
    _opt(
        "URL",
        "CSV URL (http, https, file) or path; repeat to try several in order, the first"
        " that downloads and validates is used; URL#date=COL&value=COL names its columns",
        "SP500_SOURCE, separated by spaces",
        "the datatweets.com CSV",
    ),
]
ModelsOption = Annotated[
    str | None,
    _opt(
        "MODELS",
        "comma-separated model names",
        "SP500_MODELS",
        "naive,drift,simple_rnn,gru,lstm,conv1d_lstm,mean",
    ),
]
EpochsOption = Annotated[
    int | None,
    _opt("N", "training epochs per network", "SP500_EPOCHS", "60"),
]
BatchSizeOption = Annotated[
    int | None,
    _opt("N", "samples per training batch (changes results)", "SP500_BATCH_SIZE", "32"),
]
WindowOption = Annotated[
    int | None,
    _opt("N", "months per input window", "SP500_WINDOW", "12"),
]
TestFractionOption = Annotated[
    float | None,
    _opt(
        "X", "share of samples held out for the lesson's test split", "SP500_TEST_FRACTION", "0.2"
    ),
]
SeedOption = Annotated[
    int | None,
    _opt("N", "first random seed for Keras", "SP500_SEED", "42"),
]
# Text, not int: Settings parses it, so `--seeds 0` and `--seeds two` both fail in one line.
SeedsOption = Annotated[
    str | None,
    _opt("N", "ensemble members per network, seeds seed … seed+N-1", "SP500_SEEDS", "5"),
]
HorizonOption = Annotated[
    str | None,
    _opt("N", "forecast months T+1 … T+N, 1 to 24", "SP500_HORIZON", "12"),
]
RefitOption = Annotated[
    str | None,
    _opt("N", "rolling evaluation: refit every N months", "SP500_REFIT_EVERY", "12"),
]
EvaluateFromOption = Annotated[
    str | None,
    _opt(
        "YYYY-MM",
        "rolling evaluation: first forecast month",
        "SP500_EVALUATE_FROM",
        "1975-01, or the first month with enough windows",
    ),
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        show_default=False,
        help=_help("retrain even if data and parameters are unchanged", "SP500_FORCE", "off"),
    ),
]
DateColumnOption = Annotated[
    str | None,
    _opt("COL", "name of the date column", "SP500_DATE_COLUMN", "date"),
]
ValueColumnOption = Annotated[
    str | None,
    _opt("COL", "name of the price column", "SP500_VALUE_COLUMN", "close"),
]
WaitOption = Annotated[
    float | None,
    _opt(
        "SECONDS", "wait this long for another run on the same warehouse", "SP500_WAIT_SECONDS", "0"
    ),
]
EnvNotifyOption = Annotated[
    str | None,
    _opt(
        "URL",
        "first put the notification automations on the server, posting to URL (as sp500 notify)",
        "SP500_NOTIFY_URL",
        None,
    ),
]


class Scaling(StrEnum):
    """Choices for ``--scaling``."""

    window = "window"
    minmax = "minmax"


class Runner(StrEnum):
    """Choices for ``--task-runner``."""

    thread = "thread"
    process = "process"
    dask = "dask"


TaskRunnerOption = Annotated[
    Runner | None,
    _opt(
        "thread|process|dask",
        "where the fits run, side by side (run and serve without it: one model after the other)",
        "SP500_TASK_RUNNER",
        "none for run and serve, process for backtest",
    ),
]
DaskAddressOption = Annotated[
    str | None,
    _opt(
        "URL",
        "scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786",
        "SP500_DASK_ADDRESS",
        None,
    ),
]
WorkersOption = Annotated[
    int | None,
    _opt("N", "parallel fits for thread/process/local dask", "SP500_WORKERS", "the cores"),
]


ScalingOption = Annotated[
    Scaling | None,
    typer.Option(
        metavar="window|minmax",
        help=_help(
            "window: log ratios to the window's last close; minmax: the lesson's",
            "SP500_SCALING",
            "window",
        ),
    ),
]


RUN_OPTIONS = (
    "source",
    "warehouse",
    "models",
    "epochs",
    "batch_size",
    "window",
    "test_fraction",
    "scaling",
    "seed",
    "seeds",
    "horizon",
    "refit_every",
    "evaluate_from",
    "force",
    "date_column",
    "value_column",
    "wait_seconds",
    "task_runner",
    "dask_address",
    "workers",
)


def _run_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """The settings ``sp500 run``'s options set (None: env or default), for run and serve.

    ``options``: a command's parameters by name (its ``locals()`` on entry).
    """
    chosen = {name: options[name] for name in RUN_OPTIONS}
    chosen["source"] = tuple(chosen["source"]) if chosen["source"] else None
    chosen["scaling"] = chosen["scaling"].value if chosen["scaling"] else None
    chosen["force"] = chosen["force"] or None
    chosen["task_runner"] = chosen["task_runner"].value if chosen["task_runner"] else None
    return chosen


class OutputFormat(StrEnum):
    """Choices for ``sp500 query --format``."""

    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def run(
    source: SourceOption = None,
    warehouse: WarehouseOption = None,
    models: ModelsOption = None,
    epochs: EpochsOption = None,
    batch_size: BatchSizeOption = None,
    window: WindowOption = None,
    test_fraction: TestFractionOption = None,
    scaling: ScalingOption = None,
    seed: SeedOption = None,
    seeds: SeedsOption = None,
    horizon: HorizonOption = None,
    refit_every: RefitOption = None,
    evaluate_from: EvaluateFromOption = None,
    force: ForceOption = False,
    date_column: DateColumnOption = None,
    value_column: ValueColumnOption = None,
    wait_seconds: WaitOption = None,
    task_runner: TaskRunnerOption = None,
    dask_address: DaskAddressOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run the monthly-retrain flow once: download, validate, train, evaluate, store."""
    settings = _settings(_run_overrides(locals()))
    from warehouse.store import check_writable  # noqa: PLC0415 (keep `sp500 query` light)

    with _one_line_errors():
        check_writable(settings.warehouse)
        _check_runner(settings)
    server = _start_temporary_server()
    _loading()
    from prefect import tags  # noqa: PLC0415

    from flows.monthly_retrain import RunSummary, monthly_retrain  # noqa: PLC0415 (TensorFlow)

    _install_log_filter()
    with _api_for_workers(server, settings.task_runner), tags(*run_tags(settings)):
        state = monthly_retrain(settings, return_state=True)
    if not state.is_completed():
        message = state.message or f"flow run ended in state {state.name}"
        # options the data make impossible fail like options that fail on their own
        raise _fail(message, 2 if message.startswith("invalid settings:") else 1)
    summary = state.result()
    if not isinstance(summary, RunSummary):  # a completed run always returns its summary
        raise _fail(f"flow run returned {type(summary).__name__}, not a run summary")
    if summary.leaderboard:
        typer.echo(LESSON_TABLE)
        typer.echo(_format_table(BOARD, [tuple(r[c] for c in BOARD) for r in summary.leaderboard]))
    if summary.champions:
        typer.echo(f"\n{VERDICT_TITLE}")
        rows = [tuple(r[c] for c in VERDICT) for r in summary.champions]
        typer.echo(_format_table(VERDICT, rows))
    typer.echo(summary.message)


@dataclass
class _ServerStart:
    """Prefect's temporary API server and its start, under way in a background thread."""

    server: Any  # prefect's SubprocessASGIServer (imported late: it loads FastAPI)
    started: Future[None]


def _start_temporary_server() -> _ServerStart | None:
    """Start the run's temporary Prefect API server now, while TensorFlow loads.

    The server is a uvicorn process that takes seconds to answer; started before the flow's
    imports (TensorFlow, about 8 s), it is up when the flow begins instead of after. It is
    the instance Prefect's client would start itself (``SubprocessASGIServer`` keeps one
    per port), so an in-process run uses it without being told. Nothing starts when an API
    URL is configured (environment or Prefect profile): that server is used.
    """
    _quiet_prefect_ephemeral_server()
    import prefect.main  # noqa: F401, PLC0415 (Prefect's logging: the start is logged)
    from prefect.server.api.server import SubprocessASGIServer  # noqa: PLC0415
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    if PREFECT_API_URL.value():
        return None
    server = SubprocessASGIServer()
    pool = ThreadPoolExecutor(1, thread_name_prefix="prefect-server-start")
    # in this thread's context, so the settings Prefect reads are the run's
    started = pool.submit(contextvars.copy_context().run, server.start)
    pool.shutdown(wait=False)  # no more work for it; the start runs on
    return _ServerStart(server, started)


@contextmanager
def _api_for_workers(start: _ServerStart | None, task_runner: str | None) -> Iterator[None]:
    """Wait for the temporary server; let task runs in other processes report to it.

    Without an API URL every process would start a throw-away server of its own, and the
    flow run in the UI would never see the task runs of process or Dask workers. Naming the
    run's temporary server in the settings (which Prefect sends along with each task) keeps
    all of them on one server. Workers on other hosts need a real server: set
    ``PREFECT_API_URL`` to an address they can reach.
    """
    if start is None:
        yield
        return
    try:
        start.started.result()
    except Exception as exc:
        raise _fail(f"Prefect's temporary API server did not start: {exc}") from None
    if task_runner in ("thread", None):
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: PLC0415

    with temporary_settings(updates={PREFECT_API_URL: start.server.api_url}):
        yield


def check_dask_scheduler(address: str, timeout: float) -> int:
    """Connect to the Dask scheduler at ``address``; return its worker count.

    Raises:
        PipelineError: nothing answers at ``address`` within ``timeout`` seconds.
    """
    from distributed import Client  # noqa: PLC0415 (dask is heavy to import)

    try:
        with Client(address, timeout=timeout, set_as_default=False) as client:
            return len(client.scheduler_info(n_workers=-1)["workers"])
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PipelineError(
            f"no Dask scheduler answered at {address} within {timeout:g} s ({reason})"
        ) from None


def _check_runner(settings: Settings) -> None:
    """``--dask-address`` only with ``--task-runner dask`` (else exit 2), and a scheduler.

    Raises:
        PipelineError: nothing answers at the address.
    """
    if settings.dask_address and settings.task_runner != "dask":
        raise _fail("--dask-address needs --task-runner dask", 2)
    if settings.dask_address:
        found = check_dask_scheduler(settings.dask_address, settings.timeout_seconds)
        typer.echo(f"Dask scheduler {settings.dask_address}: {found} workers", err=True)


@app.command()
def backtest(
    origins: Annotated[
        int | None,
        typer.Option(
            metavar="N", help=_help("how many past months to forecast", "SP500_ORIGINS", "60")
        ),
    ] = None,
    chunk_size: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help=_help(
                "origins of one network trained together as one stacked fit, one task run",
                "SP500_CHUNK_SIZE",
                "60",
            ),
        ),
    ] = None,
    models: ModelsOption = None,
    task_runner: TaskRunnerOption = None,
    dask_address: DaskAddressOption = None,
    workers: WorkersOption = None,
    source: SourceOption = None,
    warehouse: WarehouseOption = None,
    epochs: EpochsOption = None,
    batch_size: BatchSizeOption = None,
    window: WindowOption = None,
    scaling: ScalingOption = None,
    seed: SeedOption = None,
    seeds: SeedsOption = None,
    date_column: DateColumnOption = None,
    value_column: ValueColumnOption = None,
    wait_seconds: WaitOption = None,
) -> None:
    """Backtest monthly retraining: at each of the last N months, fit on the data before it."""
    settings = _settings(
        {
            "origins": origins,
            "chunk_size": chunk_size,
            "models": models,
            "task_runner": task_runner.value if task_runner else None,
            "dask_address": dask_address,
            "workers": workers,
            "source": tuple(source) if source else None,
            "warehouse": warehouse,
            "epochs": epochs,
            "batch_size": batch_size,
            "window": window,
            "scaling": scaling.value if scaling else None,
            "seed": seed,
            "seeds": seeds,
            "date_column": date_column,
            "value_column": value_column,
            "wait_seconds": wait_seconds,
        }
    )
    from warehouse.store import check_writable  # noqa: PLC0415

    with _one_line_errors():
        check_writable(settings.warehouse)
        _check_runner(settings)
    server = _start_temporary_server()
    _loading()
    from prefect import tags  # noqa: PLC0415

    from flows.common import make_task_runner, runner_name  # noqa: PLC0415
    from flows.monthly_backtest import BacktestSummary, monthly_backtest  # noqa: PLC0415

    _install_log_filter()
    flow = monthly_backtest.with_options(task_runner=make_task_runner(settings))
    runner = runner_name(settings)
    with _api_for_workers(server, runner), tags("sp500", "backtest", f"runner:{runner}"):
        state = flow(settings, return_state=True)
    if not state.is_completed():
        raise _fail(state.message or f"flow run ended in state {state.name}")
    summary = state.result()
    if not isinstance(summary, BacktestSummary):  # a completed backtest returns its summary
        raise _fail(f"flow run returned {type(summary).__name__}, not a backtest summary")
    columns = [
        "model",
        "rmse",
        "mae",
        "theil_u2",
        "dm_pvalue",
        "coverage_80",
        "coverage_95",
        "seconds",
    ]
    typer.echo(_format_table(columns, [tuple(r[c] for c in columns) for r in summary.table]))
    typer.echo(summary.message)


def _cell(value: object) -> str:
    if isinstance(value, float) and math.isnan(value):  # not defined (one seed, no test)
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"
    return "NULL" if value is None else str(value)


def _format_table(columns: list[str], rows: list[tuple[object, ...]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


@app.command()
def query(
    sql: Annotated[
        str,
        typer.Argument(metavar="SQL", help="one SQL statement, e.g. 'SELECT * FROM leaderboard'"),
    ],
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            metavar="table|csv|json",
            show_default=False,
            help=_help("output", None, "table"),
        ),
    ] = OutputFormat.table,
    warehouse: WarehouseOption = None,
) -> None:
    """Run read-only SQL against the warehouse and print the result."""
    from warehouse.store import query as run_query  # noqa: PLC0415

    settings = _settings({"warehouse": warehouse})
    with _one_line_errors():
        columns, rows = run_query(settings.warehouse, sql)
    if output_format is OutputFormat.json:
        typer.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str))
    elif output_format is OutputFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        typer.echo(buffer.getvalue(), nl=False)
    else:
        typer.echo(_format_table(columns, rows))


SERVER_HELP = (
    "scheduling needs a Prefect server and PREFECT_API_URL is not set: run "
    "`prefect server start` in another terminal, then "
    "`PREFECT_API_URL=http://127.0.0.1:4200/api sp500 serve`"
)


def _absolute_source(source: str) -> str:
    from core.sources import parse_source  # noqa: PLC0415

    location = parse_source(source).location
    path = Path(location)
    if "://" in location or not path.exists():
        return source
    return str(path.resolve()) + source.strip()[len(location) :]  # the mapping stays


@app.command()
def serve(
    cron: Annotated[
        str,
        typer.Option(
            metavar="CRON", help=_help("cron schedule of the deployment", None, "0 6 2 * *")
        ),
    ] = "0 6 2 * *",
    timezone: Annotated[
        str,
        typer.Option(
            metavar="TZ",
            show_default=False,
            help=_help("time zone of the cron schedule", None, "UTC"),
        ),
    ] = "UTC",
    notify_url: EnvNotifyOption = None,
    source: SourceOption = None,
    warehouse: WarehouseOption = None,
    models: ModelsOption = None,
    epochs: EpochsOption = None,
    batch_size: BatchSizeOption = None,
    window: WindowOption = None,
    test_fraction: TestFractionOption = None,
    scaling: ScalingOption = None,
    seed: SeedOption = None,
    seeds: SeedsOption = None,
    horizon: HorizonOption = None,
    refit_every: RefitOption = None,
    evaluate_from: EvaluateFromOption = None,
    force: ForceOption = False,
    date_column: DateColumnOption = None,
    value_column: ValueColumnOption = None,
    wait_seconds: WaitOption = None,
    task_runner: TaskRunnerOption = None,
    dask_address: DaskAddressOption = None,
    workers: WorkersOption = None,
) -> None:
    """Register deployment monthly-retrain/monthly on a cron schedule and serve its runs.

    Takes every option of `sp500 run`; they (with SP500_* env and defaults) become the
    deployment's parameters, so every scheduled run uses them. With --notify-url, first puts
    the notification automations on the server (as `sp500 notify`). Invalid options fail
    before anything is registered.
    """
    settings = _settings({**_run_overrides(locals()), "notify_url": notify_url})
    if not os.environ.get("PREFECT_API_URL"):
        raise _fail(SERVER_HELP)
    settings = settings.model_copy(
        update={
            "warehouse": settings.warehouse.resolve(),
            "source": tuple(_absolute_source(s) for s in settings.source),
        }
    )
    from warehouse.store import check_writable  # noqa: PLC0415

    with _one_line_errors():
        check_writable(settings.warehouse)
        _check_runner(settings)
    _loading()
    from prefect.deployments.runner import EntrypointType  # noqa: PLC0415
    from prefect.schedules import Cron  # noqa: PLC0415

    from flows.monthly_retrain import monthly_retrain  # noqa: PLC0415

    try:
        schedule = Cron(cron, timezone=timezone)
    except ValueError as exc:
        raise _fail(f"invalid schedule: {exc}", 2) from None
    if settings.notify_url:
        _install_notifications(settings.notify_url)
    _install_log_filter()
    monthly_retrain.serve(
        name=DEPLOYMENT_NAME,
        schedules=[schedule],
        parameters={"settings": settings.model_dump(mode="json")},
        tags=run_tags(settings),
        description="Monthly retrain of every model on the latest S&P 500 data.",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


NOTIFY_HELP = (
    "notifications need a Prefect server and PREFECT_API_URL is not set: run "
    "`prefect server start` in another terminal, then "
    "`PREFECT_API_URL=http://127.0.0.1:4200/api sp500 notify --url URL`"
)


def _install_notifications(url: str) -> None:
    """Create or update the automations that POST to ``url``; one line on failure."""
    from tasks.run.notify import install_automations  # noqa: PLC0415

    try:
        names = install_automations(url)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(
            f"could not set up notifications on {os.environ.get('PREFECT_API_URL')}: {reason}"
        ) from None
    typer.echo(f"notifications to {url}: {len(names)} automations ({', '.join(names)})")


@app.command()
def notify(
    url: NotifyUrlOption = None,
    test: Annotated[
        bool,
        typer.Option(
            "--test",
            show_default=False,
            help=_help("send one test message through the automations", None, "off"),
        ),
    ] = False,
) -> None:
    """Put automations on the Prefect server that POST JSON to URL when a run needs you.

    On a failed or crashed monthly-retrain/monthly-backtest run, a forecast that missed its
    95 % band, a new champion, revised history and every completed run. Running it again
    updates them; they need a persistent server (`prefect server start`).
    """
    settings = _settings({"notify_url": url})
    if settings.notify_url is None and not test:
        raise _fail("notify needs --url URL (or SP500_NOTIFY_URL), or --test", 2)
    if not os.environ.get("PREFECT_API_URL"):
        raise _fail(NOTIFY_HELP)
    if settings.notify_url:
        _install_notifications(settings.notify_url)
    if test:
        from tasks.run.notify import TEST_EVENT, send_test_event  # noqa: PLC0415

        try:
            send_test_event()
        except Exception as exc:
            raise _fail(f"could not send the test event: {exc}") from None
        typer.echo(f"sent {TEST_EVENT}: its automation posts it to the webhook")


@app.command()
def report(
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run", metavar="RUN_ID", help=_help("run id", None, "the latest completed run")
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help=_help("directory for the PNGs", None, "reports/ beside the warehouse file"),
        ),
    ] = None,
    warehouse: WarehouseOption = None,
) -> None:
    """Print the verdict per horizon, forecasts and scorecard; write the report PNGs."""
    from tasks.run.report import (  # noqa: PLC0415
        champion_reason,
        coverage_by_decade,
        data_notes,
        due_diligence,
        horizon_champions,
        path_models,
        render_history,
        render_report,
    )
    from warehouse.store import read_run_report  # noqa: PLC0415

    settings = _settings({"warehouse": warehouse})
    with _one_line_errors():
        data = read_run_report(settings.warehouse, run_id)
    typer.echo(f"Run {data.run_id}")
    if not data.champions.empty:
        typer.echo(f"\nChampion: {champion_reason(data.champions.iloc[0])}")
    if data.source:
        for note in data_notes(data.source, data.passed_over, data.revisions):
            typer.echo(note)
    forecasts = data.forecasts.assign(target_month=data.forecasts["target_month"].dt.date)
    columns = ["model", "target_month", "point", "lower_80", "upper_80", "lower_95", "upper_95"]
    next_month = forecasts[forecasts["horizon"] == 1]
    typer.echo("\nForecasts for next month (lowest test RMSE first)")
    typer.echo(_format_table(columns, list(next_month[columns].itertuples(index=False))))
    path = horizon_champions(forecasts, data.champions)
    if len(path):
        typer.echo(f"\n{VERDICT_TITLE}")
        verdicts = data.champions.merge(path[["horizon", "target_month", "point"]], on="horizon")
        shown = ["horizon", "target_month", "model", "point", *VERDICT[2:]]
        typer.echo(_format_table(shown, list(verdicts[shown].itertuples(index=False))))
        typer.echo(f"\nThe path: each horizon's champion ({path_models(path)}), with its bands")
        columns = ["horizon", "model", *columns[1:]]
        typer.echo(_format_table(columns, list(path[columns].itertuples(index=False))))
    decades = coverage_by_decade(data.champion_history)
    if len(decades):
        typer.echo(
            "\nCoverage of the path's rolling bands per decade (hN 80: the 80 % band at h = N)"
        )
        typer.echo(_format_table(list(decades.columns), list(decades.itertuples(index=False))))
    typer.echo(f"\n{LESSON_TABLE}")
    typer.echo(_format_table(BOARD, [tuple(r[c] for c in BOARD) for r in data.leaderboard]))
    rmse = {str(r["model"]): float(r["rmse"]) for r in data.leaderboard}
    verdict_lines = due_diligence(rmse, data.comparisons)
    if verdict_lines:
        typer.echo("\nDue diligence (Diebold-Mariano tests over the test months)")
        for line in verdict_lines:
            typer.echo(f"- {line}")
    typer.echo("\nScorecard (stored forecasts whose month has since arrived)")
    if data.scorecard.empty:
        typer.echo("nothing to score yet: it fills once a later run brings the forecast month")
    else:
        columns = list(data.scorecard.columns)
        typer.echo(_format_table(columns, list(data.scorecard.itertuples(index=False))))
    directory = out if out is not None else settings.reports_dir
    try:
        png = render_report(
            data.prices,
            data.predictions,
            data.forecasts,
            data.champions,
            directory / f"{data.run_id}.png",
        )
        history = render_history(data.champion_history, directory / f"{data.run_id}-history.png")
    except OSError as exc:
        raise _fail(f"cannot write the report to {directory}: {exc.strerror}") from None
    typer.echo(f"\nreport written to {png}" + (f" and {history}" if history else ""))


warehouse_app = typer.Typer(
    help="Look after the warehouse file.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(warehouse_app, name="warehouse")


@warehouse_app.command()
def compat(warehouse: WarehouseOption = None) -> None:
    """Rewrite a warehouse made before 0.2 so that DuckDB 1.4 and later open it.

    Holds the run lock (no run writes meanwhile); the file is replaced in one rename.
    """
    from warehouse.lock import hold_run_lock  # noqa: PLC0415
    from warehouse.store import OLDEST_READER, convert_storage  # noqa: PLC0415

    settings = _settings({"warehouse": warehouse})
    if not settings.warehouse.is_file():
        raise _fail(f"no warehouse at {settings.warehouse}")
    with _one_line_errors(), hold_run_lock(settings.warehouse, "warehouse compat"):
        converted = convert_storage(settings.warehouse)
    done = "converted" if converted else "already in the compatible format"
    typer.echo(f"{settings.warehouse}: {done}; DuckDB {OLDEST_READER} and later open it")


def main() -> None:
    """Console-script entry point; exits non-zero with one line on any failure."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
