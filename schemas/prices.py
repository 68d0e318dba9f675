"""Pandera schema of the raw monthly series: one row per month, ``date`` and ``close``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

MAX_ABS_LOG_CHANGE = float(np.log(2.0))

#: What each named check means, for one-line error messages.
CHECK_DESCRIPTIONS: dict[str, str] = {
    "csv_parses": "body parses as CSV text",
    "columns_present": "date and value columns are present",
    "date_parses": "date parses as an ISO date (YYYY-MM-DD) in 1678…2261",
    "first_of_month": "date is the first day of a month",
    "unique_month": "each month appears once",
    "strictly_increasing": "dates strictly increase",
    "no_missing_month": "no month is missing between rows",
    "close_is_number": "close is a number",
    "close_finite": "close is finite",
    "close_positive": "close is > 0",
    "log_change_below_ln2": "month-over-month |log change| < ln 2",
    "min_rows": "enough rows for the window, the test split and the horizon",
}


def _month_index(dates: pd.Series) -> pd.Series:
    return dates.dt.year * 12 + dates.dt.month


def _strictly_increasing(dates: pd.Series) -> pd.Series:
    step = dates.diff()
    return step.isna() | (step > pd.Timedelta(0))


def _no_missing_month(dates: pd.Series) -> pd.Series:
    gap = _month_index(dates).diff()
    return gap.isna() | (gap <= 1)


def _log_change_ok(frame: pd.DataFrame) -> pd.Series:
    with np.errstate(invalid="ignore", divide="ignore"):
        change = np.log(frame["close"].where(frame["close"] > 0)).diff().abs()
    return change.isna() | (change < MAX_ABS_LOG_CHANGE)


def prices_schema(min_rows: int) -> pa.DataFrameSchema:
    """Schema of a parsed price frame (``date`` datetime64[ns], ``close`` float64).

    Nulls are allowed by the column types so that unparsable values fail the named checks
    ``date_parses`` and ``close_is_number`` instead of a generic nullability error.
    """
    return pa.DataFrameSchema(
        {
            "date": pa.Column(
                "datetime64[ns]",
                nullable=True,
                checks=[
                    pa.Check(lambda s: s.notna(), name="date_parses", ignore_na=False),
                    pa.Check(
                        lambda s: (s.dt.day == 1) & (s.dt.normalize() == s),
                        name="first_of_month",
                    ),
                    pa.Check(lambda s: ~s.duplicated(keep=False), name="unique_month"),
                    pa.Check(_strictly_increasing, name="strictly_increasing"),
                    pa.Check(_no_missing_month, name="no_missing_month"),
                ],
            ),
            "close": pa.Column(
                "float64",
                nullable=True,
                checks=[
                    pa.Check(lambda s: s.notna(), name="close_is_number", ignore_na=False),
                    pa.Check(np.isfinite, name="close_finite"),
                    pa.Check(lambda s: s > 0, name="close_positive"),
                ],
            ),
        },
        checks=[
            pa.Check(_log_change_ok, name="log_change_below_ln2"),
            pa.Check(lambda df: len(df) >= min_rows, name="min_rows"),
        ],
        strict=True,
        ordered=False,
    )
