from __future__ import annotations

import pytest

from core.sources import SourceSpec, parse_source, split_sources

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data/sp500.csv", SourceSpec("data/sp500.csv", "data/sp500.csv")),
        (
            "https://h.example/s.csv#date=Date&value=SP500",
            SourceSpec(
                "https://h.example/s.csv#date=Date&value=SP500",
                "https://h.example/s.csv",
                "Date",
                "SP500",
            ),
        ),
        (
            "https://h.example/s.csv?x=1#value=Close",
            SourceSpec(
                "https://h.example/s.csv?x=1#value=Close",
                "https://h.example/s.csv?x=1",
                None,
                "Close",
            ),
        ),
        (
            "f.csv#date=Month%20start",
            SourceSpec("f.csv#date=Month%20start", "f.csv", "Month start"),
        ),
    ],
)
def test_a_source_is_a_location_and_its_own_columns(text: str, expected: SourceSpec) -> None:
    assert parse_source(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty source"),
        ("#date=Date", "empty source"),
        ("s.csv#close=SP500", "unknown mapping key 'close'"),
        ("s.csv#date=", "date= needs one column name"),
        ("s.csv#date=A&date=B", "date= needs one column name"),
        ("s.csv#", "empty mapping"),
    ],
)
def test_a_bad_source_is_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_source(text)


def test_sources_are_separated_by_white_space() -> None:
    assert split_sources(" a.csv\tb.csv#value=SP500\n c ") == ("a.csv", "b.csv#value=SP500", "c")
    assert split_sources("  ") == ()
