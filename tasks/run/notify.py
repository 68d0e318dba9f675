"""Tell people when the monthly run needs them: the flows' events and the automations on them.

A completed monthly run emits Prefect events whose resource ids lie under ``sp500.``:

- ``sp500.forecast.missed``: a forecast of an earlier run, scored for the first time with this
  run's data, whose actual fell outside its 95 % band (the freshest forecast per model and
  month: model, horizon, target month, actual, band);
- ``sp500.champion.changed``: a horizon whose rolling champion is not the previous run's
  (horizon, old, new);
- ``sp500.data.revised``: past months whose close changed since the previous run (months,
  largest change);
- ``sp500.run.completed``: the champion and its next month's forecast with its bands.

The flows emit them whether or not anything listens. ``sp500 notify --url URL`` (and
``sp500 serve --notify-url URL``) puts automations on the Prefect server that POST a JSON
body to URL for each of these events, for a ``monthly-retrain`` or ``monthly-backtest`` flow
run that ends Failed or Crashed, and for the ``sp500.notify.test`` event of
``sp500 notify --test``. Automations run on the server, so notifications need a persistent
one (``prefect server start``); a webhook that cannot be reached fails the automation's
action, shown in the Prefect UI, never the run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
from prefect import get_run_logger, task
from prefect.automations import AutomationCore, EventTrigger, Posture, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.events.worker import EventsWorker
from prefect.runtime import flow_run as current_flow_run
from prefect.settings import PREFECT_UI_URL
from prefect.types import SecretDict
from prefect.utilities.urls import url_for

from tasks.run.report import headline_champion, largest_revision
from warehouse.store import RunChanges, RunOutput, run_changes

MISSED = "sp500.forecast.missed"
CHAMPION_CHANGED = "sp500.champion.changed"
DATA_REVISED = "sp500.data.revised"
RUN_COMPLETED = "sp500.run.completed"
TEST_EVENT = "sp500.notify.test"
RUN_EVENTS = (MISSED, CHAMPION_CHANGED, DATA_REVISED, RUN_COMPLETED)
WATCHED_FLOWS = ("monthly-retrain", "monthly-backtest")
BLOCK_NAME = "sp500-notify"  # the custom-webhook notification block every automation calls
AUTOMATION_PREFIX = "sp500: "


@dataclass(frozen=True)
class RunEvent:
    """One event a run emits: its name and JSON-ready payload."""

    event: str
    payload: dict[str, Any] = field(default_factory=dict)


def _month(value: object) -> str:
    return f"{pd.Timestamp(value):%Y-%m}"


def _number(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else round(number, 4)


def run_events(output: RunOutput, changes: RunChanges) -> list[RunEvent]:
    """The events of one completed monthly run, in the order they are emitted.

    The champion of the first horizon (its next-month forecast) goes into
    ``sp500.run.completed``; ``changes`` compares the run with the previous completed one.
    """
    champion = headline_champion(output.rolling_champions)
    events = [
        RunEvent(
            MISSED,
            {
                "model": str(row.model),
                "horizon": int(row.horizon),
                "target_month": _month(row.target_month),
                "actual": _number(row.actual),
                "lower_95": _number(row.lower_95),
                "upper_95": _number(row.upper_95),
                "forecast_run_id": str(row.run_id),
            },
        )
        for row in changes.missed.itertuples(index=False)
    ]
    champions = changes.previous_champions
    before = dict(zip(champions["horizon"], champions["model"], strict=True))
    for row in output.rolling_champions.itertuples(index=False):
        old = before.get(row.horizon)
        if old is not None and old != row.model:
            events.append(
                RunEvent(
                    CHAMPION_CHANGED,
                    {"horizon": int(row.horizon), "old": str(old), "new": str(row.model)},
                )
            )
    if len(output.revisions):
        largest = largest_revision(output.revisions)
        events.append(
            RunEvent(
                DATA_REVISED,
                {
                    "months": [_month(m) for m in output.revisions["month"]],
                    "count": len(output.revisions),
                    "largest_month": _month(largest["month"]),
                    "largest_change": _number(largest["relative_change"]),
                    "since_run_id": str(largest["since_run_id"]),
                },
            )
        )
    forecasts = output.forecasts
    first = forecasts[(forecasts["model"] == champion) & (forecasts["horizon"] == 1)]
    completed: dict[str, Any] = {"champion": champion}
    if len(first):
        row = first.iloc[0]
        completed |= {
            "month": _month(row["target_month"]),
            "point": _number(row["point"]),
            **{k: _number(row[k]) for k in ("lower_80", "upper_80", "lower_95", "upper_95")},
        }
    events.append(RunEvent(RUN_COMPLETED, completed))
    return events


def emit_run_events(
    events: Sequence[RunEvent], run_id: str, flow_run: dict[str, str | None]
) -> int:
    """Emit ``events`` for run ``run_id`` (resource ``sp500.run.<run_id>``); return how many.

    ``flow_run`` (its name and UI link) goes into every payload, so a notification names the
    run without another look-up. Inside a flow, Prefect relates each event to the flow run.
    """
    resource = {"prefect.resource.id": f"sp500.run.{run_id}", "prefect.resource.name": run_id}
    sent = 0
    for item in events:
        payload = {**item.payload, "run_id": run_id, **flow_run}
        if emit_event(event=item.event, resource=resource, payload=payload) is not None:
            sent += 1
    return sent


@task(name="emit_run_events", cache_policy=NO_CACHE)
def emit_run_events_task(output: RunOutput, warehouse: Path) -> int:
    """Emit the run's events; a failure to emit is a warning, never a failed run."""
    logger = get_run_logger()
    try:
        events = run_events(output, run_changes(warehouse, output.run_id))
        sent = emit_run_events(events, output.run_id, _flow_run_fields())
    except Exception as exc:
        logger.warning("could not emit the run's events: %s", exc)
        return 0
    logger.info("emitted %s", ", ".join(e.event for e in events))
    return sent


def _flow_run_fields() -> dict[str, str | None]:
    """The current flow run's name (as renamed during the run) and its UI link."""
    run_id = current_flow_run.get_id()
    if run_id is None:
        return {"flow_run": None, "link": None}
    with get_client(sync_client=True) as client:
        name = client.read_flow_run(UUID(run_id)).name
    return {"flow_run": name, "link": url_for("flow-run", obj_id=run_id, url_type="ui")}


# What each automation POSTs: a JSON body, rendered by the server from the event.
EVENT_BODY = (
    '{"event": {{ event.event|tojson }}, "resource": {{ event.resource.id|tojson }},'
    ' "payload": {{ event.payload|tojson }}}'
)
FAILED_BODY = (
    '{"event": {{ event.event|tojson }}, "flow_run": {{ flow_run.name|tojson }},'
    ' "flow": {{ flow.name|tojson }}, "state": {{ flow_run.state.name|tojson }},'
    ' "message": {{ flow_run.state.message|tojson }},'
    ' "link": {{ (ui ~ "/runs/flow-run/" ~ flow_run.id)|tojson }}}'
)  # ``ui``: the server's UI address, set when the automation is written


@dataclass(frozen=True)
class AutomationSpec:
    """One automation ``sp500 notify`` keeps on the server: what it expects and sends."""

    name: str
    expect: tuple[str, ...]
    body: str
    flows_only: bool = False  # match only flow runs of the watched flows


AUTOMATIONS = (
    AutomationSpec(
        f"{AUTOMATION_PREFIX}flow run failed or crashed",
        ("prefect.flow-run.Failed", "prefect.flow-run.Crashed"),
        FAILED_BODY,
        flows_only=True,
    ),
    *(AutomationSpec(f"{AUTOMATION_PREFIX}{event}", (event,), EVENT_BODY) for event in RUN_EVENTS),
    AutomationSpec(f"{AUTOMATION_PREFIX}{TEST_EVENT}", (TEST_EVENT,), EVENT_BODY),
)


def automation_for(spec: AutomationSpec, block_id: UUID, ui: str = "") -> Any:
    """The Prefect automation of ``spec``, sending its body through the block ``block_id``.

    ``ui`` (the UI's address) goes into the body as a constant: the server renders links
    with its own ``PREFECT_UI_URL``, which a plain ``prefect server start`` leaves unset.
    """
    match_related: dict[str, str | list[str]] = (
        {"prefect.resource.role": "flow", "prefect.resource.name": list(WATCHED_FLOWS)}
        if spec.flows_only
        else {}
    )
    return AutomationCore(
        name=spec.name,
        description="Created by `sp500 notify`; running it again updates it.",
        trigger=EventTrigger(
            expect=set(spec.expect),
            match={"prefect.resource.id": "prefect.flow-run.*" if spec.flows_only else "sp500.*"},
            match_related=match_related,
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject=spec.name,
                body="{% set ui = " + json.dumps(ui) + " %}" + spec.body,
            )
        ],
    )


def notification_block(url: str) -> CustomWebhookNotificationBlock:
    """The block every automation sends through: POST the rendered body, as is, to ``url``.

    Not Prefect's ``Webhook`` block: its calls share one connection pool that each call
    closes when it ends, so events delivered at the same moment cut each other off (a body
    lost or sent empty). This block opens a client per call; the URL stays a secret.
    """
    return CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url="{{url}}",
        method="POST",
        form_data="{{body}}",
        headers={"Content-Type": "application/json"},
        cookies=None,
        secrets=SecretDict({"url": url}),
    )


def install_automations(url: str) -> list[str]:
    """Create or update, by name, the notification block and every automation; return their names.

    Idempotent: an automation that exists (names are not unique on the server, so every one
    of that name) is updated to the current definition, and duplicates are deleted.
    """
    ui = (PREFECT_UI_URL.value() or "").rstrip("/")
    block_id = notification_block(url).save(BLOCK_NAME, overwrite=True)
    if not isinstance(block_id, UUID):  # save is async only inside an event loop
        raise TypeError(f"saving the notification block returned {type(block_id).__name__}")
    names = []
    with get_client(sync_client=True) as client:
        for spec in AUTOMATIONS:
            wanted = automation_for(spec, block_id, ui)
            existing = client.read_automations_by_name(spec.name)
            if existing:
                first, *extra = existing
                client.update_automation(first.id, wanted)
                for duplicate in extra:
                    client.delete_automation(duplicate.id)
            else:
                client.create_automation(wanted)
            names.append(spec.name)
    return names


def send_test_event() -> None:
    """Emit ``sp500.notify.test``: its automation sends one message the way the others do."""
    emit_event(
        event=TEST_EVENT,
        resource={"prefect.resource.id": "sp500.notify", "prefect.resource.name": "sp500 notify"},
        payload={"message": "a test message from sp500 notify --test"},
    )
    EventsWorker.drain_all(timeout=30)
