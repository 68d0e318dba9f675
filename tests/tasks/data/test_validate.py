from __future__ import annotations

import pandas as pd
import pytest

from core.errors import ValidationFailed
from tasks.data.validate import parse_prices
from tests.conftest import synthetic_prices, to_csv_bytes

pytestmark = pytest.mark.unit


def good_frame(n: int = 40) -> pd.DataFrame:
    return synthetic_prices(n, seed=3)


def csv_with(change) -> bytes:
    frame = good_frame().astype({"close": object})
    return to_csv_bytes(change(frame))


def test_valid_series_parses_to_month_and_close() -> None:
    frame = parse_prices(to_csv_bytes(good_frame()), min_rows=30)
    assert list(frame.columns) == ["month", "close"]
    assert len(frame) == 40
    assert frame["month"].iloc[0] == pd.Timestamp("1990-01-01")
    assert frame["close"].dtype == "float64"


def test_other_layout_is_mapped_by_column_options() -> None:
    frame = good_frame().rename(columns={"date": "Date", "close": "SP500"})
    parsed = parse_prices(to_csv_bytes(frame), 30, date_column="Date", value_column="SP500")
    assert len(parsed) == 40


def test_bom_crlf_and_quotes_are_accepted() -> None:
    body = to_csv_bytes(good_frame()).decode().replace("\n", "\r\n")
    body = "\ufeff" + body.replace("1990-01-01", '"1990-01-01"')
    assert len(parse_prices(body.encode(), 30)) == 40


def _set(row: int, column: str, value: object):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame

    return change


def _duplicate(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[5, "date"] = frame.loc[4, "date"]
    return frame


def _drop_month(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(index=10)


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (_set(3, "date", "not-a-date"), "date_parses"),
        (_set(3, "date", "0000-01-01"), "date_parses"),  # parses, but no datetime64[ns]
        (_set(3, "date", "1990-04-15"), "first_of_month"),
        (_duplicate, "unique_month"),
        (_drop_month, "no_missing_month"),
        (_set(7, "close", -5.0), "close_positive"),
        (_set(7, "close", 0.0), "close_positive"),
        (_set(7, "close", "NaN"), "close_is_number"),
        (_set(7, "close", "abc"), "close_is_number"),
        (_set(7, "close", "inf"), "close_finite"),
        (_set(7, "close", 1e6), "log_change_below_ln2"),
    ],
    ids=[
        "unparsable-date",
        "year-zero",
        "mid-month",
        "duplicate-month",
        "missing-month",
        "negative",
        "zero",
        "nan",
        "text",
        "inf",
        "jump",
    ],
)
def test_bad_rows_are_rejected_by_name(change, check: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_prices(csv_with(change), min_rows=30)
    failures = info.value.failures
    assert check in set(failures["check_name"])
    assert check in str(info.value)
    assert "\n" not in str(info.value)


def test_failure_lists_every_check_with_row_and_raw_value() -> None:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[2, "date"] = "garbage"
        frame.loc[9, "close"] = "-1"
        return frame

    with pytest.raises(ValidationFailed) as info:
        parse_prices(csv_with(change), min_rows=30)
    failures = info.value.failures
    by_check = failures.set_index("check_name")
    assert by_check.loc["date_parses", "failure_case"] == "garbage"
    assert by_check.loc["date_parses", "row_index"] == 2
    assert by_check.loc["close_positive", "failure_case"] == "-1"
    assert list(failures.columns) == ["check_name", "column_name", "failure_case", "row_index"]


def test_decreasing_dates_are_rejected() -> None:
    frame = good_frame().iloc[::-1]
    with pytest.raises(ValidationFailed, match="strictly_increasing"):
        parse_prices(to_csv_bytes(frame), 30)


def test_too_few_rows() -> None:
    with pytest.raises(ValidationFailed, match=r"min_rows.*40 rows, need 50"):
        parse_prices(to_csv_bytes(good_frame()), min_rows=50)


@pytest.mark.parametrize(
    ("body", "check"),
    [
        (b"Date,Price\n2000-01-01,1\n", "columns_present"),
        (b"\xff\xfe\x00garbage\x81", "csv_parses"),
        (b"", "csv_parses"),
        (b"date,close\n,0.0,\n", "csv_parses"),
        (b"date,close\n2000-01-01,1,2\n", "csv_parses"),
    ],
    ids=["wrong-columns", "binary", "empty", "row-longer-than-header", "extra-cells"],
)
def test_unreadable_tables(body: bytes, check: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_prices(body, 30)
    assert set(info.value.failures["check_name"]) == {check}


@pytest.mark.parametrize("value", ['"0\n0"', '"2001-01-01\r\nx"'])
def test_a_value_with_a_line_break_stays_on_the_one_line(value: str) -> None:
    body = f"date,close\n{value},1.0\n".encode()
    with pytest.raises(ValidationFailed) as caught:
        parse_prices(body, 1)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert "date_parses" in message and "\\n" in message
