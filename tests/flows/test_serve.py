"""`sp500 serve` against a real `prefect server start`: schedule, triggered runs, artifacts."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import (
    LocalServer,
    Route,
    stop_process_group,
    synthetic_prices,
    to_csv_bytes,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SP500 = Path(sys.executable).with_name("sp500")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"


def test_serve_without_a_server_says_how_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SP500_"))}
    env["PREFECT_HOME"] = str(tmp_path)
    result = subprocess.run(
        [str(SP500), "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "PREFECT_API_URL is not set" in lines[0] and "prefect server start" in lines[0]
    assert "sp500 serve" in lines[0]


async def _wait_for_deployment(client, name: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await client.read_deployment_by_name(name)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


async def _trigger(client, deployment, overrides: dict[str, object], timeout: float = 600):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    settings = {**deployment.parameters["settings"], **overrides}
    run = await client.create_flow_run_from_deployment(
        deployment.id, parameters={"settings": settings}
    )
    deadline = time.monotonic() + timeout
    while True:
        run = await client.read_flow_run(run.id)
        if run.state and run.state.is_final():
            break
        assert time.monotonic() < deadline, f"flow run stuck in {run.state}"
        await asyncio.sleep(1)
    filt = FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
    task_runs = await client.read_task_runs(flow_run_filter=filt)
    return run, task_runs


async def _artifact_keys(client, flow_run_id) -> dict[str, object]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    return {a.key: a.id for a in artifacts if a.key}


def _screenshot(url: str, path: Path, wait_for: str) -> str | None:
    """Open ``url`` in headless Chromium, wait until ``wait_for`` is rendered, save a PNG.

    The picture and the returned DOM come from the same rendered page, so a picture taken
    before the page filled in cannot pass. None: no Chromium or chromedriver here.
    """
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1440,1000",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(url)
        WebDriverWait(driver, 60).until(
            lambda d: wait_for in d.find_element(By.TAG_NAME, "body").text
        )
        time.sleep(1.0)  # let the layout settle after the text arrives
        driver.save_screenshot(str(path))
        return driver.page_source
    finally:
        driver.quit()


def test_serve_schedules_and_runs_with_artifacts(
    prefect_server: dict[str, str], http_server: LocalServer, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    url = http_server.serve("/s.csv", Route(body=to_csv_bytes(synthetic_prices(130, seed=6))))
    bad = http_server.serve("/bad.csv", Route(body=b"date,close\n2000-01-01,-5\n2000-03-01,1\n"))
    warehouse = tmp_path / "w.duckdb"
    env = {**prefect_server, "SP500_SOURCE": url, "SP500_WAREHOUSE": str(warehouse)}
    serving = subprocess.Popen(
        [
            *(str(SP500), "serve", "--cron", "0 6 2 * *", "--timezone", "UTC", "--seeds", "2"),
            *("--epochs", "3", "--batch-size", "16", "--models", "naive,drift"),
        ],
        env=env,
        cwd=tmp_path,
        stdout=(tmp_path / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    old = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
    os.environ.update(PREFECT_API_URL=env["PREFECT_API_URL"], PREFECT_HOME=env["PREFECT_HOME"])
    try:

        async def scenario():
            async with get_client() as client:
                deployment = await _wait_for_deployment(client, "monthly-retrain/monthly")
                good = await _trigger(
                    client, deployment, {"models": ["naive", "drift", "lstm"], "epochs": 1}
                )
                failed = await _trigger(client, deployment, {"source": bad, "models": ["naive"]})
                return (
                    deployment,
                    good,
                    await _artifact_keys(client, good[0].id),
                    failed,
                    await _artifact_keys(client, failed[0].id),
                )

        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
            deployment, (run, task_runs), keys, (bad_run, _), bad_keys = asyncio.run(scenario())
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop_process_group(serving, signal.SIGINT, timeout=30)

    log = (tmp_path / "serve.log").read_text()
    schedules = [s.schedule for s in deployment.schedules]
    assert [(s.cron, s.timezone) for s in schedules] == [("0 6 2 * *", "UTC")], log
    assert set(deployment.tags) == {"sp500", "scaling:window"}
    stored = deployment.parameters["settings"]  # every run option reaches scheduled runs
    assert (stored["seeds"], stored["epochs"], stored["batch_size"]) == (2, 3, 16)
    assert stored["models"] == ["naive", "drift"]
    assert run.state.is_completed(), (run.state, log[-3000:])
    assert run.name == "retrain-2000-10"
    assert set(run.tags) >= {"sp500", "scaling:window"}
    names = {t.name for t in task_runs}
    assert {
        "fit-lstm",  # one stacked fit: both ensembles and every rolling origin
        "evaluate-lstm",
        "forecast-lstm",
    } <= names
    for step in ("fetch_prices", "find_revisions", "make_windows", "write_run", "publish_results"):
        assert any(n.startswith(step) for n in names), (step, names)
    assert all(t.state.is_completed() for t in task_runs)
    assert {"sp500-leaderboard", "sp500-forecast"} <= set(keys)
    assert bad_run.state.is_failed()
    assert "close_positive" in bad_run.state.message
    assert "sp500-validation" in bad_keys

    # what a person sees: the flow-run page and the artifact page in headless Chromium
    ui = env["PREFECT_API_URL"].removesuffix("/api")
    # the page's first screen of logs (oldest first) reaches the last model's first fit
    dom = _screenshot(f"{ui}/runs/flow-run/{run.id}", tmp_path / "flow-run.png", "fit-lstm")
    if dom is None:
        pytest.skip("no chromium on this machine (tests/setup_browser.sh installs it)")
    assert "retrain-2000-10" in dom
    assert (tmp_path / "flow-run.png").stat().st_size > 20_000
    # the artifact's markdown body must have rendered in the very page that was pictured
    artifact = f"{ui}/artifacts/artifact/{keys['sp500-forecast']}"
    dom = _screenshot(artifact, tmp_path / "artifact.png", "Champion")
    assert "Champion" in dom and "S&amp;P 500 forecast for 2000-11" in dom
    if os.environ.get("SP500_SAVE_SCREENSHOTS"):  # refreshes the pictures in the README
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name in ("flow-run.png", "artifact.png"):
            shutil.copy(tmp_path / name, SCREENSHOTS / name)
