"""Helpers both flows use: run ids, names in the UI, untagged task runs, task runners."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from prefect.client.orchestration import get_client
from prefect.context import TagsContext
from prefect.runtime import flow_run
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from core.settings import Settings


def new_run_id() -> str:
    """A sortable, unique run id: UTC timestamp plus 8 random hex digits."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def rename_flow_run(name: str) -> None:
    """Rename the current flow run in the UI (a no-op outside a flow run)."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(uuid.UUID(run_id), name=name)


@contextmanager
def untagged_task_runs() -> Iterator[None]:
    """Inside it, task runs no longer inherit the tags of ``prefect.tags()`` around the flow.

    The CLI's tags label the flow run. Prefect asks its API for a concurrency slot for each
    tagged task run, and with Prefect 3.9 that request can stall for about 2 s after a long
    task: several seconds per run for tags nobody limits.
    """
    with TagsContext(current_tags=set()):
        yield


def runner_name(settings: Settings) -> str:
    """The task runner ``make_task_runner`` makes: ``--task-runner``, else ``process``."""
    return settings.task_runner or "process"


def make_task_runner(settings: Settings) -> TaskRunner[Any]:
    """The Prefect task runner that ``--task-runner`` (and ``--dask-address``) ask for.

    No ``--task-runner``: a process pool, the backtest's default.
    """
    if runner_name(settings) == "process":
        return ProcessPoolTaskRunner(max_workers=settings.workers)
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner  # noqa: PLC0415 (dask is heavy to import)

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": settings.workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    return ThreadPoolTaskRunner(max_workers=settings.workers)
