"""Expected pipeline failures: each carries a one-line message meant for the user."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


class PipelineError(Exception):
    """A failure the user can act on; its message is one line and needs no traceback."""


class SourceError(PipelineError):
    """The source could not be read: network, HTTP status, size cap, wrong kind of body."""


class WarehouseError(PipelineError):
    """The DuckDB warehouse cannot be opened or written."""


class SettingsError(PipelineError):
    """Options that the data make impossible; the message starts ``invalid settings:``.

    The CLI exits 2 on it, as for options that fail on their own, and the run leaves nothing.
    """


class ValidationFailed(PipelineError):
    """The downloaded series broke the price schema; ``failures`` lists every failing row."""

    def __init__(self, message: str, failures: pd.DataFrame) -> None:
        """Keep the one-line summary and the table of failure cases."""
        super().__init__(message)
        self.failures = failures
