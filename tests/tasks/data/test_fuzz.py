"""Hypothesis-generated CSV bodies through download + validate: accepted or cleanly rejected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import SourceError, ValidationFailed
from tasks.data.ingest import fetch_source
from tasks.data.validate import parse_prices

pytestmark = pytest.mark.unit

MIN_ROWS = 5

EARLY, LATE = pd.Timestamp("1900-01-01").date(), pd.Timestamp("2100-01-01").date()
dates = st.one_of(
    st.dates(min_value=EARLY, max_value=LATE).map(lambda d: d.replace(day=1).isoformat()),
    st.dates().map(lambda d: d.strftime("%d/%m/%Y")),
    st.dates().map(lambda d: d.strftime("%Y-%m")),
    st.dates().map(lambda d: d.isoformat() + "T12:00:00"),
    st.text(max_size=12),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=1e-300, max_value=1e300).map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", "NaN", "inf", "-inf", "1e309", "0", "-0", "1,234.5", " 42 "]),
    st.text(max_size=8),
)
row = st.tuples(dates, numbers, st.lists(st.text(max_size=5), max_size=2))


@st.composite
def csv_bodies(draw: st.DrawFn) -> bytes:
    rows = draw(st.lists(row, max_size=30))
    quote = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    header = draw(st.sampled_from(["date,close", "date,close,extra", "close,date", "Date,SP500"]))
    lines = [header]
    for date, value, extra in rows:
        cells = [date, value, *extra]
        if quote:
            cells = ['"' + c.replace('"', '""') + '"' for c in cells]
        lines.append(",".join(cells))
    text = newline.join(lines) + newline
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text).encode("utf-8", errors="surrogatepass")


@st.composite
def valid_series(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(MIN_ROWS, 40))
    start = draw(
        st.dates(
            min_value=pd.Timestamp("1900-01-01").date(), max_value=pd.Timestamp("2090-01-01").date()
        )
    )
    steps = draw(st.lists(st.floats(-0.6, 0.6), min_size=n, max_size=n))
    level = draw(st.floats(1e-3, 1e6))
    months = pd.date_range(pd.Timestamp(start).replace(day=1), periods=n, freq="MS")
    close = level * np.exp(np.cumsum(steps))
    return (
        pd.DataFrame({"date": months.strftime("%Y-%m-%d"), "close": close})
        .to_csv(index=False)
        .encode()
    )


def check_body(tmp_path, body: bytes) -> pd.DataFrame | None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(body)
    try:
        download = fetch_source(str(path))
        frame = parse_prices(download.content, MIN_ROWS)
    except (SourceError, ValidationFailed) as exc:
        assert str(exc) and "\n" not in str(exc)
        if isinstance(exc, ValidationFailed):
            assert len(exc.failures) > 0
            assert list(exc.failures.columns) == [
                "check_name",
                "column_name",
                "failure_case",
                "row_index",
            ]
        return None
    # whatever is accepted really is a clean monthly series
    assert len(frame) >= MIN_ROWS
    assert frame["month"].is_monotonic_increasing and frame["month"].is_unique
    assert (frame["month"].dt.day == 1).all()
    assert np.isfinite(frame["close"]).all() and (frame["close"] > 0).all()
    assert (np.abs(np.diff(np.log(frame["close"]))) < np.log(2)).all()
    return frame


FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=st.binary(max_size=400))
def test_random_bytes_are_accepted_or_rejected_cleanly(tmp_path, body: bytes) -> None:
    check_body(tmp_path, body)


@FUZZ
@given(body=csv_bodies())
def test_hostile_rows_are_accepted_or_rejected_cleanly(tmp_path, body: bytes) -> None:
    check_body(tmp_path, body)


@FUZZ
@given(body=valid_series())
def test_generated_valid_series_are_accepted(tmp_path, body: bytes) -> None:
    assert check_body(tmp_path, body) is not None
