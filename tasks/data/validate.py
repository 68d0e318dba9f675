"""Parse CSV bytes into a validated monthly price frame (``month``, ``close``)."""

from __future__ import annotations

import csv
import io
import warnings

import pandas as pd
import pandera.pandas as pa

from core.errors import ValidationFailed
from schemas.prices import CHECK_DESCRIPTIONS, prices_schema

FAILURE_COLUMNS = ["check_name", "column_name", "failure_case", "row_index"]
MAX_STORED_FAILURES = 10_000
EXAMPLES_PER_CHECK = 3


def _failures(rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=FAILURE_COLUMNS)
    frame["row_index"] = frame["row_index"].astype("Int64")
    frame["failure_case"] = frame["failure_case"].astype("string")
    return frame.head(MAX_STORED_FAILURES)


def summarize_failures(failures: pd.DataFrame) -> str:
    """Return one line naming every failed check with a count and a few example values."""
    parts = []
    for check, group in failures.groupby("check_name", sort=False):
        examples = []
        for case, row in zip(
            group["failure_case"].head(EXAMPLES_PER_CHECK),
            group["row_index"].head(EXAMPLES_PER_CHECK),
            strict=True,
        ):
            shown = str(case).replace("\r", "\\r").replace("\n", "\\n")  # one line
            examples.append(shown + ("" if pd.isna(row) else f" (row {int(row)})"))
        description = CHECK_DESCRIPTIONS.get(str(check), str(check))
        parts.append(f"{check} [{description}]: {len(group)} failing, e.g. {', '.join(examples)}")
    return f"validation failed ({len(parts)} check(s)): " + "; ".join(parts)


def _reject(rows: list[dict[str, object]]) -> ValidationFailed:
    failures = _failures(rows)
    return ValidationFailed(summarize_failures(failures), failures)


def _row_longer_than_header(text: str) -> str | None:
    """Describe the first data row with more cells than the header, if any.

    pandas 2 silently drops one trailing empty cell (``2000-01-01,1,``); pandas 3 warns. A
    cell without a column is a malformed file under either, so it is checked here.
    """
    rows = csv.reader(io.StringIO(text), skipinitialspace=True)
    header = next(rows, [])
    for number, cells in enumerate(rows):
        if len(cells) > len(header):
            return f"data row {number} has {len(cells)} cells, the header has {len(header)}"
    return None


def parse_prices(
    content: bytes, min_rows: int, date_column: str = "date", value_column: str = "close"
) -> pd.DataFrame:
    """Turn CSV bytes into a validated frame of ``month`` (datetime64[ns]) and ``close`` (float).

    Raises:
        ValidationFailed: every failing check, with example values and 0-based data row numbers.
    """
    try:
        text = content.decode("utf-8-sig")
        if problem := _row_longer_than_header(text):
            raise pd.errors.ParserError(problem)
        with warnings.catch_warnings():
            # rows longer than the header are caught above; any other parser warning
            # (they differ between pandas versions) also means a malformed file
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(
                io.StringIO(text),
                dtype=str,
                keep_default_na=False,
                skipinitialspace=True,
                index_col=False,
            )
    except (
        UnicodeDecodeError,
        csv.Error,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        pd.errors.ParserWarning,
    ) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _reject(
            [
                {
                    "check_name": "csv_parses",
                    "column_name": None,
                    "failure_case": reason[:200],
                    "row_index": None,
                }
            ]
        ) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in (date_column, value_column) if c not in raw.columns]
    if missing:
        found = ", ".join(map(str, raw.columns[:10]))
        raise _reject(
            [
                {
                    "check_name": "columns_present",
                    "column_name": c,
                    "failure_case": f"missing; found columns: {found}",
                    "row_index": None,
                }
                for c in missing
            ]
        )
    raw_date = raw[date_column].astype(str).str.strip()
    raw_close = raw[value_column].astype(str).str.strip()
    dates = pd.to_datetime(raw_date, format="ISO8601", errors="coerce")
    # years such as 0000 parse, but do not fit datetime64[ns]: treat them as unparsable
    dates = dates.where((dates >= pd.Timestamp.min) & (dates <= pd.Timestamp.max))
    frame = pd.DataFrame(
        {
            "date": dates.astype("datetime64[ns]"),
            "close": pd.to_numeric(raw_close, errors="coerce").astype("float64"),
        }
    )
    try:
        prices_schema(min_rows).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        rows = []
        originals = {"date": raw_date, "close": raw_close}
        for case in exc.failure_cases.itertuples(index=False):
            column = case.column if isinstance(case.column, str) else None
            index = case.index if case.index is not None and not pd.isna(case.index) else None
            if case.check == "min_rows":
                value: object = f"{len(frame)} rows, need {min_rows}"
            elif column in originals and index is not None:
                value = originals[column].iloc[int(index)]
            else:
                value = case.failure_case
            rows.append(
                {
                    "check_name": str(case.check),
                    "column_name": column,
                    "failure_case": str(value)[:200],
                    "row_index": index,
                }
            )
        raise _reject(rows) from None
    return frame.rename(columns={"date": "month"}).reset_index(drop=True)
