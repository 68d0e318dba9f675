"""Past months whose close a provider revised since the previous completed run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from warehouse.store import TABLE_COLUMNS, previous_prices

REVISION_TOLERANCE = 1e-9  # relative change below this is the same close
REVISION_COLUMNS = TABLE_COLUMNS["revisions"]


def find_revisions(prices: pd.DataFrame, previous: pd.DataFrame, since_run_id: str) -> pd.DataFrame:
    """Months in both series whose close changed by more than ``REVISION_TOLERANCE``, relatively.

    Months only one series has (a new month, or one the provider dropped) are not revisions.
    """
    both = prices[["month", "close"]].merge(
        previous[["month", "close"]].rename(columns={"close": "previous_close"}), on="month"
    )
    change = both["close"].to_numpy() / both["previous_close"].to_numpy() - 1.0
    revised = np.abs(change) > REVISION_TOLERANCE
    changed = both[revised].assign(relative_change=change[revised], since_run_id=since_run_id)
    return changed[REVISION_COLUMNS].reset_index(drop=True)


@task(name="find_revisions", cache_policy=NO_CACHE)
def find_revisions_task(warehouse: Path, prices: pd.DataFrame) -> pd.DataFrame:
    """Compare the validated series with the previous completed run's snapshot."""
    previous = previous_prices(warehouse)
    if previous is None:
        return pd.DataFrame(columns=REVISION_COLUMNS)
    run_id, frame = previous
    frame["month"] = pd.to_datetime(frame["month"])
    revisions = find_revisions(prices, frame, run_id)
    if len(revisions):
        get_run_logger().warning(
            "%d past month(s) changed since run %s: %s",
            len(revisions),
            run_id,
            ", ".join(f"{m:%Y-%m}" for m in revisions["month"]),
        )
    return revisions
