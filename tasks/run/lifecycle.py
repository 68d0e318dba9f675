"""One run's bookkeeping, the same for the monthly run and the backtest.

``RunLifecycle`` is a context manager. Entering it takes the warehouse's run lock, applies
pending migrations, marks runs a dead process left ``running`` as failed (and deletes
their saved models), and inserts this run's ``running`` row. Inside it, a flow does only
its data steps and ends with exactly one of ``commit`` or ``unchanged``; leaving it by an
exception records the run as ``invalid`` (a ``SettingsError``: settings the data make
impossible) or ``failed`` with that exception's one-line message (and its validation
failures). Every outcome leaves the run's row, with the reason. The lock is released
last, whatever happened.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Literal

from core.errors import PipelineError, SettingsError, ValidationFailed
from core.settings import Settings
from tasks.run.persist import (
    close_run,
    find_unchanged_run,
    migrate_warehouse,
    record_run_failure,
    record_run_start,
    recover_crashed_runs,
    write_backtest,
    write_run,
)
from warehouse.lock import hold_run_lock

Kind = Literal["retrain", "backtest"]
# what commit writes for each kind of run (both in one DuckDB transaction)
WRITERS: dict[str, Callable[..., None]] = {"retrain": write_run, "backtest": write_backtest}


def failure_message(exc: BaseException) -> str:
    """The ``runs.error`` text of a failure: the message itself for an expected one."""
    if isinstance(exc, PipelineError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


class RunLifecycle:
    """Lock, migrate, recover, ``running`` row; then one of commit, unchanged, invalid, fail."""

    def __init__(
        self,
        warehouse: Path,
        models_dir: Path,
        run_id: str,
        *,
        kind: Kind,
        params: dict[str, object],
        flow_run_id: str | None,
        wait_seconds: float,
    ) -> None:
        """Describe the run; nothing happens until the block is entered."""
        self.warehouse, self.models_dir, self.run_id = Path(warehouse), Path(models_dir), run_id
        self.kind, self.params, self.flow_run_id = kind, params, flow_run_id
        self.wait_seconds = wait_seconds
        # "committing", "completed", "unchanged", "invalid" or "failed"
        self.outcome: str | None = None
        self._stack = ExitStack()

    @classmethod
    def of(
        cls,
        settings: Settings,
        run_id: str,
        kind: Kind,
        flow_run_id: str | None,
        wait_seconds: float | None = None,
    ) -> RunLifecycle:
        """The lifecycle of a run with these settings, its parameters as ``kind`` stores them."""
        params = {"retrain": settings.run_params, "backtest": settings.backtest_params}[kind]()
        return cls(
            settings.warehouse,
            settings.models_dir,
            run_id,
            kind=kind,
            params=params,
            flow_run_id=flow_run_id,
            wait_seconds=settings.wait_seconds if wait_seconds is None else wait_seconds,
        )

    @property
    def artifact_dir(self) -> Path:
        """Where this run saves its models; deleted unless the run commits."""
        return self.models_dir / self.run_id

    def __enter__(self) -> RunLifecycle:
        """Take the lock and record the run as ``running``.

        Raises:
            WarehouseError: another run holds the lock, or the warehouse is unusable.
        """
        self._stack.enter_context(hold_run_lock(self.warehouse, self.run_id, self.wait_seconds))
        try:
            migrate_warehouse(self.warehouse)
            recover_crashed_runs(self.warehouse, self.models_dir, self.run_id)
            record_run_start(self.warehouse, self.run_id, self.flow_run_id, self.params, self.kind)
        except BaseException:
            self._stack.close()
            raise
        return self

    def unchanged_since(self, snapshot_id: str) -> str | None:
        """The last completed run's id if it used this snapshot and the same parameters."""
        return find_unchanged_run(self.warehouse, snapshot_id, self.params)

    def unchanged(self, previous: str, snapshot_id: str) -> str:
        """Record this run as ``unchanged``: the data and parameters of run ``previous``.

        Returns:
            The reason, as stored.
        """
        self._settle("unchanged")
        reason = f"data unchanged since run {previous}; nothing to do (use --force to rerun)"
        close_run(self.warehouse, self.run_id, "unchanged", reason, self.artifact_dir, snapshot_id)
        return reason

    def commit(self, output: object) -> None:
        """Write the run's results and mark it completed, in one transaction."""
        self._settle("committing")
        WRITERS[self.kind](self.warehouse, output)
        self.outcome = "completed"  # after this, nothing can fail the run

    def _settle(self, outcome: str) -> None:
        if self.outcome is not None:
            raise RuntimeError(f"run {self.run_id} is already {self.outcome}")
        self.outcome = outcome

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Record a failure (the exception goes on), then release the lock."""
        unsettled = None
        with self._stack:
            if exc is None and self.outcome is None:
                exc = unsettled = RuntimeError("the flow ended without committing or a reason")
            if isinstance(exc, SettingsError) and self.outcome is None:
                self.outcome = "invalid"
                close_run(self.warehouse, self.run_id, "invalid", str(exc), self.artifact_dir)
            elif exc is not None and self.outcome in (None, "committing"):
                self.outcome = "failed"
                failures = exc.failures if isinstance(exc, ValidationFailed) else None
                record_run_failure(
                    self.warehouse, self.run_id, failure_message(exc), failures, self.artifact_dir
                )
        if unsettled is not None:
            raise unsettled
