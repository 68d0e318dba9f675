"""README.md and docs/*.md: every relative link and anchor resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)

pytestmark = pytest.mark.unit


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of ``page`` (a repeated heading gets -1, -2, … as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            base = slug(match[1])
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """Relative links of ``page`` outside code blocks (not http(s), mailto or file URIs)."""
    text = FENCE.sub("", page.read_text())
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT)}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert broken == []


def test_the_slug_follows_github() -> None:
    heading = "Fifty years, twelve horizons (`rolling.py`, `peers.py`, `early_member.py`)"
    assert slug(heading) == "fifty-years-twelve-horizons-rollingpy-peerspy-early_memberpy"
    assert slug("Notifications: when the monthly run needs you") == (
        "notifications-when-the-monthly-run-needs-you"
    )


def test_the_readme_table_is_the_results_file_s_to_the_digit() -> None:
    readme = (ROOT / "README.md").read_text()
    results = (ROOT / "benchmarks" / "results" / "rolling.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("|")]
    assert rows, "README.md has no results table"
    start = results.index(rows[0])
    assert results[start:].splitlines()[: len(rows)] == rows
