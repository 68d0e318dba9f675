"""The Pandera schema on its own: each named check catches its case and names the row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from schemas.prices import CHECK_DESCRIPTIONS, prices_schema

pytestmark = pytest.mark.unit


def frame(n: int = 24) -> pd.DataFrame:
    close = 100 * np.exp(np.cumsum(np.full(n, 0.01)))
    return pd.DataFrame({"date": pd.date_range("2001-01-01", periods=n, freq="MS"), "close": close})


def failed_checks(data: pd.DataFrame, min_rows: int = 12) -> set[tuple[str, object]]:
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        prices_schema(min_rows).validate(data, lazy=True)
    cases = caught.value.failure_cases
    return {(str(c), i) for c, i in zip(cases["check"], cases["index"], strict=True)}


def test_a_clean_series_passes_unchanged() -> None:
    data = frame()
    pd.testing.assert_frame_equal(prices_schema(12).validate(data), data)


@pytest.mark.parametrize(
    ("row", "column", "value", "check"),
    [
        (3, "date", pd.NaT, "date_parses"),
        (3, "date", pd.Timestamp("2001-04-15"), "first_of_month"),
        (3, "date", pd.Timestamp("2001-03-01"), "unique_month"),
        (3, "close", np.nan, "close_is_number"),
        (3, "close", np.inf, "close_finite"),
        (3, "close", -5.0, "close_positive"),
        (3, "close", 1e4, "log_change_below_ln2"),
    ],
)
def test_each_check_names_the_row_it_rejects(row, column, value, check) -> None:
    data = frame()
    data.loc[row, column] = value
    assert (check, row) in failed_checks(data)


def test_a_missing_month_and_a_step_back_are_caught() -> None:
    gap = frame().drop(index=5).reset_index(drop=True)
    assert ("no_missing_month", 5) in failed_checks(gap)
    back = frame()
    back.loc[6, "date"] = pd.Timestamp("2000-06-01")
    assert ("strictly_increasing", 6) in failed_checks(back)


def test_too_few_rows_is_a_whole_table_failure() -> None:
    assert {check for check, _ in failed_checks(frame(10), min_rows=12)} == {"min_rows"}


def test_an_extra_column_is_refused() -> None:
    with pytest.raises(pa.errors.SchemaErrors):
        prices_schema(12).validate(frame().assign(volume=1.0), lazy=True)


def test_every_check_has_a_description() -> None:
    schema = prices_schema(12)
    names = {c.name for c in schema.checks}
    names |= {c.name for col in schema.columns.values() for c in col.checks}
    assert names <= set(CHECK_DESCRIPTIONS)
