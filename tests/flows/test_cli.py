from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import LocalServer, Route, synthetic_prices, to_csv_bytes
from warehouse.store import query

pytestmark = pytest.mark.integration

SP500 = Path(sys.executable).with_name("sp500")


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a new user: fresh PREFECT_HOME, no Prefect API configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SP500_"))}
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    return env


def sp500(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SP500), *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")][-1]


@pytest.mark.parametrize(
    ("args", "code", "pattern"),
    [
        (["--warehouse", "/nonexistent-dir/w.duckdb"], 1, "warehouse directory does not exist"),
        (["--models", "naive,prophet"], 2, "unknown model"),
        (["--test-fraction", "1.5"], 2, "test_fraction"),
    ],
)
def test_bad_options_fail_fast_with_one_line(cli_env, args, code, pattern) -> None:
    result = sp500(cli_env, "run", *args)
    assert result.returncode == code
    assert pattern in last_line(result)
    assert "Traceback" not in result.stderr + result.stdout


def test_read_only_warehouse_directory(cli_env, read_only_dir) -> None:
    result = sp500(cli_env, "run", "--warehouse", str(read_only_dir / "w.duckdb"))
    assert result.returncode == 1
    assert "not writable" in last_line(result)


@pytest.mark.slow
def test_run_then_query_as_a_new_user(cli_env, http_server: LocalServer, tmp_path: Path) -> None:
    url = http_server.serve("/s.csv", Route(body=to_csv_bytes(synthetic_prices(120))))
    warehouse = str(tmp_path / "w.duckdb")
    result = sp500(
        cli_env,
        "run",
        "--source",
        url,
        "--warehouse",
        warehouse,
        "--models",
        "naive,drift,gru",
        "--epochs",
        "2",
        "--seeds",
        "2",
        "--horizon",
        "6",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert "| ERROR" not in output and "database is locked" not in output
    assert result.stderr.splitlines()[0] == "loading TensorFlow…"  # our first line
    for notice in ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "rebuild TensorFlow"):
        assert notice not in output  # TensorFlow's start-up notices are filtered
    assert "gru (model 3/3): epoch 2/2" in output  # progress while training
    assert "completed: 3 models" in result.stdout

    table = sp500(
        cli_env,
        "query",
        "SELECT model, n FROM leaderboard ORDER BY model",
        "--warehouse",
        warehouse,
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["model", "n"]
    as_csv = sp500(
        cli_env,
        "query",
        "SELECT model, n FROM leaderboard ORDER BY model",
        "--warehouse",
        warehouse,
        "--format",
        "csv",
    )
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["model", "n"],
        ["drift", "22"],
        ["gru", "22"],
        ["naive", "22"],
    ]
    as_json = sp500(
        cli_env,
        "query",
        "SELECT count(*) AS n FROM runs",
        "--warehouse",
        warehouse,
        "--format",
        "json",
    )
    assert json.loads(as_json.stdout) == [{"n": 1}]
    months = sp500(
        cli_env,
        "query",
        "SELECT model, max(horizon) AS h, count(*) AS n FROM latest_forecasts"
        " GROUP BY 1 ORDER BY 1",
        "--warehouse",
        warehouse,
        "--format",
        "json",
    )
    assert json.loads(months.stdout) == [
        {"model": m, "h": 6, "n": 6} for m in ("drift", "gru", "naive")
    ]

    write = sp500(cli_env, "query", "DELETE FROM runs", "--warehouse", warehouse)
    assert write.returncode == 1
    assert "read-only" in last_line(write)


def test_http_404_exits_non_zero_with_one_line(http_server: LocalServer, tmp_path, monkeypatch):
    """In-process through typer's CliRunner (the subprocess tests above cover exit codes)."""
    for name in [k for k in os.environ if k.startswith("SP500_")]:
        monkeypatch.delenv(name)
    url = http_server.serve("/exists.csv", Route(body=b"date,close\n"))
    missing = url.replace("exists", "missing")
    warehouse = tmp_path / "w.duckdb"
    result = CliRunner().invoke(app, ["run", "--source", missing, "--warehouse", str(warehouse)])
    assert result.exit_code == 1
    errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert errors[-1] == f"error: HTTP 404 Not Found from {missing}"
    assert "Traceback" not in result.stdout + result.stderr


SEEDS_MESSAGES = [
    ("0", "seeds: Input should be greater than or equal to 1"),
    ("-2", "seeds: Input should be greater than or equal to 1"),
    ("two", "seeds: Input should be a valid integer"),
    ("2.5", "seeds: Input should be a valid integer"),
]
HORIZON_MESSAGES = [
    ("0", "horizon: Input should be greater than or equal to 1"),
    ("25", "horizon: Input should be less than or equal to 24"),
    ("twelve", "horizon: Input should be a valid integer"),
]
ROLLING_MESSAGES = [
    ("refit_every", "0", "refit_every: Input should be greater than or equal to 1"),
    ("refit_every", "-3", "refit_every: Input should be greater than or equal to 1"),
    ("refit_every", "twelve", "refit_every: Input should be a valid integer"),
    ("evaluate_from", "1975-13", "evaluate_from: Value error, must be a month, YYYY-MM"),
    ("evaluate_from", "1975", "evaluate_from: Value error, must be a month, YYYY-MM"),
]
SOURCE_MESSAGES = [
    ("source", "a.csv#close=SP500", "source: Value error, unknown mapping key 'close'"),
    ("source", " ", "source: Value error, empty source"),  # an empty list, as option or env
    ("source", "a.csv#date=", "source: Value error, date= needs one column name"),
]
BAD_NUMBERS = [
    *[("seeds", c, v, m) for c in ("run", "backtest", "serve") for v, m in SEEDS_MESSAGES],
    *[("horizon", c, v, m) for c in ("run", "serve") for v, m in HORIZON_MESSAGES],
    *[(o, c, v, m) for c in ("run", "serve") for o, v, m in ROLLING_MESSAGES],
    *[(o, c, v, m) for c in ("run", "backtest") for o, v, m in SOURCE_MESSAGES],
]


def test_a_temporary_server_that_does_not_start_fails_with_one_line_and_writes_nothing(
    cli_env, tmp_path: Path
) -> None:
    """The CLI starts Prefect's temporary server while TensorFlow loads and reports its failure.

    ``sp500 backtest`` starts it with the same function.
    """
    env = cli_env | {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0"}  # no time to answer
    warehouse = tmp_path / "out" / "w.duckdb"
    warehouse.parent.mkdir()
    source = tmp_path / "prices.csv"
    source.write_bytes(to_csv_bytes(synthetic_prices(60)))
    result = sp500(env, "run", "--source", str(source), "--warehouse", str(warehouse))
    assert result.returncode == 1
    assert last_line(result) == (
        "error: Prefect's temporary API server did not start: Timed out while attempting to"
        " connect to ephemeral Prefect API server."
    )
    assert list(warehouse.parent.iterdir()) == []


@pytest.mark.parametrize(("option", "command", "value", "message"), BAD_NUMBERS)
def test_bad_seeds_or_horizon_fail_with_one_line_and_write_nothing(
    option, command, value, message, tmp_path, monkeypatch
) -> None:
    for name in [k for k in os.environ if k.startswith("SP500_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # serve takes its warehouse from the default path here
    # as an option, then as the env variable a deployment or a worker would read
    flag = f"--{option.replace('_', '-')}"
    for args, env in (([flag, value], {}), ([], {f"SP500_{option.upper()}": value})):
        for key, env_value in env.items():
            monkeypatch.setenv(key, env_value)
        result = CliRunner().invoke(app, [command, *args])
        assert result.exit_code == 2
        (line,) = [x for x in result.stderr.splitlines() if x.strip()]
        assert line.startswith("error: invalid settings:") and message in line
        assert list(tmp_path.iterdir()) == []


def test_report_prints_the_leaderboard_champion_and_due_diligence(
    warehouse_with_a_run: Path, tmp_path: Path
) -> None:
    """In-process on a copy of the pre-built warehouse (naive and drift)."""
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        app, ["report", "--warehouse", str(warehouse_with_a_run), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("Run ")
    assert "\nChampion: At h = 1, " in text
    (source,) = [x for x in text.splitlines() if x.startswith("Data from ")]
    assert source.endswith(".") and "passing over" not in source  # one source answered
    assert "Due diligence (Diebold-Mariano tests over the test months)" in text
    verdicts = [x for x in text.splitlines() if x.startswith("- ")]
    assert len(verdicts) == 1 and verdicts[0].startswith("- drift vs naive: ")
    # one verdict per horizon, then the path it draws (each horizon's champion), 12 months
    section = text.split("\nChampion per horizon (rolling evaluation", 1)[1].split("\n\n", 1)[0]
    table = section.splitlines()[3:]
    assert [int(line.split()[0]) for line in table] == list(range(1, 13))
    assert {line.split()[2] for line in table} <= {"naive", "drift"}
    path = text.split("\nThe path: each horizon's champion", 1)[1].split("\n\n", 1)[0]
    assert [int(line.split()[0]) for line in path.splitlines()[3:]] == list(range(1, 13))
    assert "\nCoverage of the path's rolling bands per decade" in text
    assert text.index("per decade") < text.index("The lesson's table") < text.index("Scorecard")
    (png,) = out.glob("*[0-9a-f].png")
    (history,) = out.glob("*-history.png")
    assert f"report written to {png} and {history}" in text
    missing = CliRunner().invoke(
        app, ["report", "--warehouse", str(warehouse_with_a_run), "--run", "nope"]
    )
    assert missing.exit_code == 1
    assert missing.stderr.strip() == f"error: no completed run 'nope' in {warehouse_with_a_run}"


HEAVY = ("prefect", "tensorflow", "keras")
WHAT_GOT_IMPORTED = """
import sys
from flows.cli import main
sys.argv = ["sp500", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("imported:", *sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def heavy_imports(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, str]:
    """The ``imported:`` line (heavy libraries loaded) of ``sp500 *args``, and its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", WHAT_GOT_IMPORTED.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("imported:")]
    return line, done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["query", "SELECT count(*) FROM runs", "--warehouse", "{warehouse}"],
        ["report", "--warehouse", "{warehouse}", "--out", "{tmp}"],
        ["warehouse", "compat", "--warehouse", "{warehouse}"],
        ["run", "--seeds", "0"],
        ["run", "--models", "naive,prophet"],
        ["backtest", "--no-such-option"],
        ["serve", "--horizon", "25"],
    ],
)
def test_the_cli_imports_prefect_and_tensorflow_only_to_run_a_flow(
    args: list[str], cli_env, warehouse_with_a_run: Path, tmp_path: Path
) -> None:
    """Help, queries, reports and option errors answer without loading the heavy libraries."""
    args = [a.format(warehouse=warehouse_with_a_run, tmp=tmp_path) for a in args]
    line, stderr = heavy_imports(args, cli_env, tmp_path)
    assert line == "imported:", stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_the_probe_sees_prefect_when_a_flow_is_about_to_run(cli_env, tmp_path: Path) -> None:
    """The probe above can fail: a run that gets as far as the flow imports Prefect."""
    args = ["run", "--source", str(tmp_path / "missing.csv"), "--warehouse", str(tmp_path / "w")]
    line, _ = heavy_imports(args, cli_env, tmp_path)
    assert line == "imported: keras prefect tensorflow"


def test_warehouse_compat_of_a_missing_file_fails_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "w.duckdb"
    result = CliRunner().invoke(app, ["warehouse", "compat", "--warehouse", str(missing)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: no warehouse at {missing}"
    assert list(tmp_path.iterdir()) == []


def test_an_evaluate_from_the_data_cannot_start_from_fails_with_one_line_and_an_invalid_run(
    http_server: LocalServer, tmp_path: Path, monkeypatch
) -> None:
    """The series starts 1990-01: its first origin with 36 windows is 1993-12."""
    for name in [k for k in os.environ if k.startswith("SP500_")]:
        monkeypatch.delenv(name)
    url = http_server.serve("/s.csv", Route(body=to_csv_bytes(synthetic_prices(120))))
    warehouse = tmp_path / "w.duckdb"
    args = ["run", "--source", url, "--warehouse", str(warehouse), "--models", "naive"]
    result = CliRunner().invoke(app, [*args, "--evaluate-from", "1991-06"])
    assert result.exit_code == 2
    errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert errors == [
        "error: invalid settings: evaluate_from: 1991-06 is outside 1993-12 … 1999-11 (the"
        " first origin needs 36 windows, and a later month to forecast)"
    ]
    _, runs = query(warehouse, "SELECT status, reason FROM runs")
    assert runs == [("invalid", errors[0].removeprefix("error: "))]
    for table in ("snapshots", "metrics", "rolling_predictions"):  # nothing else is written
        assert query(warehouse, f"SELECT count(*) FROM {table}")[1] == [(0,)]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["notify", "--url", "ftp://example.org/x"],
            {},
            "notify_url: Value error, must be an http",
        ),
        (["notify"], {"SP500_NOTIFY_URL": "example.org/hook"}, "must be an http or https URL"),
        (["serve", "--notify-url", "mailto:me@example.org"], {}, "must be an http or https URL"),
        (["notify"], {}, "notify needs --url URL (or SP500_NOTIFY_URL), or --test"),
    ],
)
def test_a_bad_notify_url_fails_with_one_line_and_writes_nothing(
    args, env, message, tmp_path, monkeypatch
) -> None:
    for name in [k for k in os.environ if k.startswith(("SP500_", "PREFECT_API"))]:
        monkeypatch.delenv(name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith("error: ") and message in line
    assert list(tmp_path.iterdir()) == []


NO_SETTING = {"cron", "timezone", "notify_url"}  # options that are not run settings
SPOKEN = {  # defaults help states in words
    "source": lambda d: "datatweets.com" in d[0],
    "evaluate_from": lambda d: d is None,
    "workers": lambda d: True,  # the machine's cores
    "dask_address": lambda d: d is None,
    "task_runner": lambda d: d is None,  # the command's own: in turn for run, process for backtest
}


@pytest.mark.unit
@pytest.mark.parametrize("command", ["run", "backtest", "serve"])
def test_every_option_shows_its_default_and_env_variable(command: str) -> None:
    """Help states each option's default (or that it has none) and the SP500_ variable."""
    from typer.main import get_command

    from core.settings import Settings

    options = [p for p in get_command(app).commands[command].params if p.name != "help"]
    assert options
    for option in options:
        text = " ".join(option.help.split())
        assert text.endswith("]") and ("default: " in text or "no default" in text), text
        assert option.metavar is None or option.metavar == option.metavar.strip(), option.name
        if option.name in NO_SETTING:
            continue
        assert f"env SP500_{option.name.upper()}" in text, text
        field = Settings.model_fields[option.name]
        default = field.get_default(call_default_factory=True)
        shown = text.rsplit("default: ", 1)[-1].rstrip("]") if "default: " in text else None
        if option.name in SPOKEN:
            assert SPOKEN[option.name](default), option.name
        elif isinstance(default, bool):
            assert shown == ("on" if default else "off"), option.name
        elif isinstance(default, tuple):
            assert shown == ",".join(default), option.name
        elif isinstance(default, float):
            assert shown is not None and float(shown) == default, option.name
        else:
            assert shown == str(default), (option.name, shown, default)


@pytest.mark.unit
def test_serve_takes_every_option_run_takes() -> None:
    from typer.main import get_command

    commands = get_command(app).commands
    run_options = {p.name for p in commands["run"].params}
    assert run_options <= {p.name for p in commands["serve"].params}
    backtest_options = {p.name for p in commands["backtest"].params}
    assert {"date_column", "value_column", "wait_seconds", "batch_size"} <= backtest_options


@pytest.mark.unit
def test_serve_with_an_invalid_run_option_fails_before_registering(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing listens there
    result = CliRunner().invoke(app, ["serve", "--epochs", "0"])
    assert result.exit_code == 2
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith("error: invalid settings: epochs:")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
def test_commands_are_grouped_in_the_help() -> None:
    text = CliRunner().invoke(app, ["--help"]).stdout
    sections = [line for line in text.splitlines() if line.endswith(":") and not line[0].isspace()]
    assert sections == ["Options:", "Running:", "Results:", "Operations:"]
    assert text.index("  run ") < text.index("  serve ") < text.index("  report ")
