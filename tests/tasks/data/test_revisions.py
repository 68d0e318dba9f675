from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.data.revisions import find_revisions, find_revisions_task
from tasks.run.report import revision_summary

pytestmark = pytest.mark.unit


def series(closes: list[float], start: str = "2026-01-01") -> pd.DataFrame:
    return pd.DataFrame(
        {"month": pd.date_range(start, periods=len(closes), freq="MS"), "close": closes}
    )


@pytest.mark.parametrize(
    ("now", "months"),
    [
        ([100.0, 101.0, 102.0, 103.0], []),  # the same history, one month more
        ([100.0, 101.0 * (1 + 5e-10), 102.0], []),  # within 1e-9: the same close
        ([100.0, 101.0 * (1 + 2e-9), 102.0], ["2026-02"]),
        ([99.0, 101.0, 103.02, 104.0], ["2026-01", "2026-03"]),
    ],
)
def test_only_months_whose_close_changed_are_revisions(now: list[float], months: list[str]) -> None:
    found = find_revisions(series(now), series([100.0, 101.0, 102.0]), "run-a")
    assert [f"{m:%Y-%m}" for m in found["month"]] == months
    assert (found["since_run_id"] == "run-a").all()


def test_a_revision_row_has_both_closes_and_the_relative_change() -> None:
    found = find_revisions(series([100.0, 103.02]), series([100.0, 102.0]), "run-a")
    row = found.iloc[0]
    assert (row["previous_close"], row["close"]) == (102.0, 103.02)
    assert row["relative_change"] == pytest.approx(0.01)
    assert revision_summary(found) == (
        "1 past month changed since run run-a, largest 2026-02 +1.0 %"
    )


def test_the_summary_names_the_largest_change() -> None:
    found = find_revisions(series([99.5, 101.0, 103.02]), series([100.0, 101.0, 102.0]), "r1")
    assert revision_summary(found) == "2 past months changed since run r1, largest 2026-03 +1.0 %"
    assert revision_summary(found.iloc[:0]) is None


def test_a_first_run_has_nothing_to_compare(tmp_path: Path) -> None:
    from warehouse.store import migrate

    migrate(tmp_path / "w.duckdb")
    found = find_revisions_task.fn(tmp_path / "w.duckdb", series([1.0, 2.0]))
    assert found.empty
