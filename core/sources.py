"""Sources of the price CSV: a URL or path, optionally with its own column mapping.

``https://example.org/sp500.csv#date=Date&value=SP500`` reads the columns ``Date`` and
``SP500``; the fragment after ``#`` is this project's, and never goes to the server.
Several sources are tried in order (``--source`` given more than once, or ``SP500_SOURCE``
with sources separated by spaces).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

MAPPING_KEYS = ("date", "value")


@dataclass(frozen=True)
class SourceSpec:
    """One source: where to read (``location``, no fragment) and which columns to take.

    ``date_column`` / ``value_column`` are ``None`` where the source names none (the run's
    ``--date-column`` / ``--value-column`` apply).
    """

    text: str  # as given, fragment included
    location: str
    date_column: str | None = None
    value_column: str | None = None


def parse_source(text: str) -> SourceSpec:
    """Split ``text`` into its location and its ``#date=…&value=…`` mapping.

    Raises:
        ValueError: an empty source, an unknown mapping key, an empty or repeated column.
    """
    location, hash_sign, fragment = text.strip().partition("#")
    if not location:
        raise ValueError(f"empty source {text!r}")
    if not hash_sign:
        return SourceSpec(text=text.strip(), location=location)
    mapping: dict[str, str] = {}
    for key, value in parse_qsl(fragment, keep_blank_values=True):
        if key not in MAPPING_KEYS:
            raise ValueError(
                f"unknown mapping key {key!r} in {text!r}: use #date=COLUMN&value=COLUMN"
            )
        if not value.strip() or key in mapping:
            raise ValueError(f"{key}= needs one column name in {text!r}")
        mapping[key] = value.strip()
    if not mapping:
        raise ValueError(f"empty mapping in {text!r}: use #date=COLUMN&value=COLUMN")
    return SourceSpec(
        text=text.strip(),
        location=location,
        date_column=mapping.get("date"),
        value_column=mapping.get("value"),
    )


def split_sources(value: str) -> tuple[str, ...]:
    """Sources separated by white space (``SP500_SOURCE``)."""
    return tuple(value.split())
