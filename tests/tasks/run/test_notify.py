from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from tasks.run import notify
from tasks.run.notify import (
    CHAMPION_CHANGED,
    DATA_REVISED,
    MISSED,
    RUN_COMPLETED,
    RunEvent,
    automation_for,
    emit_run_events_task,
    run_events,
)
from warehouse.store import MISSED_COLUMNS, TABLE_COLUMNS, RunChanges, RunOutput


def output(champions: dict[int, str], revisions: list[tuple[str, float]] = ()) -> RunOutput:
    forecasts = pd.DataFrame(
        [
            {
                "model": m,
                "target_month": pd.Timestamp("2026-06-01") + pd.DateOffset(months=h - 1),
                "horizon": h,
                "point": 100.0 + h,
                "lower_80": 95.0,
                "upper_80": 110.0,
                "lower_95": 90.0,
                "upper_95": 120.0,
            }
            for m in ("naive", "drift")
            for h in (1, 2)
        ]
    )
    empty = pd.DataFrame()
    return RunOutput(
        run_id="r2",
        snapshot_id="s",
        source="a.csv",
        fetched_at=datetime.now(UTC),
        prices=empty,
        models=empty,
        metrics=empty,
        predictions=empty,
        forecasts=forecasts,
        seed_metrics=empty,
        comparisons=empty,
        horizon_metrics=empty,
        rolling_champions=pd.DataFrame(
            [
                {"horizon": h, "model": m, "rmse": 1.0, "dm_pvalue": 0.1}
                for h, m in champions.items()
            ]
        ),
        revisions=pd.DataFrame(
            [
                {
                    "month": pd.Timestamp(m),
                    "previous_close": 100.0,
                    "close": 100.0 * (1 + c),
                    "relative_change": c,
                    "since_run_id": "r1",
                }
                for m, c in revisions
            ],
            columns=TABLE_COLUMNS["revisions"],
        ),
    )


def changes(missed: int = 0, champions: dict[int, str] | None = None) -> RunChanges:
    rows = [
        {
            "model": "naive",
            "horizon": 1,
            "target_month": pd.Timestamp("2026-05-01"),
            "actual": 70.0,
            "lower_95": 90.0,
            "upper_95": 120.0,
            "run_id": "r1",
        }
    ][:missed]
    before = champions or {}
    return RunChanges(
        "r1" if champions is not None else None,
        pd.DataFrame(rows, columns=MISSED_COLUMNS),
        pd.DataFrame({"horizon": list(before), "model": list(before.values())}),
    )


@pytest.mark.unit
def test_a_quiet_run_emits_only_its_completion_with_the_champions_next_month() -> None:
    events = run_events(output({1: "drift"}), changes(champions={1: "drift"}))
    assert events == [
        RunEvent(
            RUN_COMPLETED,
            {
                "champion": "drift",
                "month": "2026-06",
                "point": 101.0,
                "lower_80": 95.0,
                "upper_80": 110.0,
                "lower_95": 90.0,
                "upper_95": 120.0,
            },
        )
    ]


@pytest.mark.unit
def test_a_miss_a_new_champion_and_revised_months_each_emit_their_event() -> None:
    events = run_events(
        output({1: "drift", 2: "naive"}, [("2026-01-01", 0.002), ("2026-03-01", -0.01)]),
        changes(missed=1, champions={1: "naive", 2: "naive"}),
    )
    assert [e.event for e in events] == [MISSED, CHAMPION_CHANGED, DATA_REVISED, RUN_COMPLETED]
    assert events[0].payload == {
        "model": "naive",
        "horizon": 1,
        "target_month": "2026-05",
        "actual": 70.0,
        "lower_95": 90.0,
        "upper_95": 120.0,
        "forecast_run_id": "r1",
    }
    assert events[1].payload == {"horizon": 1, "old": "naive", "new": "drift"}
    assert events[2].payload == {
        "months": ["2026-01", "2026-03"],
        "count": 2,
        "largest_month": "2026-03",
        "largest_change": -0.01,
        "since_run_id": "r1",
    }


@pytest.mark.unit
def test_the_completed_event_names_the_first_horizons_champion() -> None:
    events = run_events(output({2: "drift", 1: "naive"}), changes())
    assert events[-1].payload["champion"] == "naive"
    assert events[-1].payload["point"] == 101.0  # naive's forecast for h = 1


@pytest.mark.unit
def test_a_first_run_has_no_champion_to_change_from() -> None:
    events = run_events(output({1: "drift"}), changes())
    assert [e.event for e in events] == [RUN_COMPLETED]


@pytest.mark.integration
def test_failing_to_emit_is_a_warning_not_a_failed_run(monkeypatch, prefect_api, caplog) -> None:
    def broken(*args: object) -> RunChanges:
        raise OSError("warehouse gone")

    monkeypatch.setattr(notify, "run_changes", broken)
    from prefect import flow

    @flow(name="emit-test")
    def emitting() -> int:
        return emit_run_events_task(output({1: "drift"}), "w.duckdb")

    assert emitting() == 0
    assert "could not emit the run's events: warehouse gone" in caplog.text


@pytest.mark.unit
def test_the_failure_automation_watches_only_the_pipelines_flows() -> None:
    from uuid import uuid4

    failed = automation_for(notify.AUTOMATIONS[0], uuid4(), "http://ui")
    assert failed.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    related = failed.trigger.match_related
    assert related["prefect.resource.name"] == ["monthly-retrain", "monthly-backtest"]
    assert failed.actions[0].body.startswith('{% set ui = "http://ui" %}')
    missed = automation_for(notify.AUTOMATIONS[1], uuid4())
    assert missed.trigger.expect == {MISSED}


@pytest.mark.unit
def test_bodies_sent_at_the_same_moment_all_arrive_intact() -> None:
    import asyncio
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(0.02 * (len(received) % 3))  # answers end at different moments
            received.append(body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 64  # every connection accepted, none refused by the backlog

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    block = notify.notification_block(f"http://127.0.0.1:{server.server_address[1]}/hook")
    bodies = [json.dumps({"event": "e", "payload": {"i": i, "text": "{{ x }}"}}) for i in range(20)]

    async def send_all() -> None:
        await asyncio.gather(*(block.anotify(body=b, subject="s") for b in bodies))

    try:
        asyncio.run(send_all())
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(r.decode() for r in received) == sorted(bodies)
