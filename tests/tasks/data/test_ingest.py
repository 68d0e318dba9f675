from __future__ import annotations

import gzip
import hashlib
import socket
import time
from datetime import UTC, datetime

import pytest

from core.errors import SourceError, ValidationFailed
from tasks.data.ingest import Download, fetch_source, first_valid_source
from tests.conftest import LocalServer, Route, synthetic_prices, to_csv_bytes

pytestmark = pytest.mark.unit

CSV = b"date,close\n2000-01-01,1.0\n"


def fast(url: str, **kw: object):
    """Fetch with tiny timeouts and no real sleeping; return (download, sleeps)."""
    sleeps: list[float] = []
    options = {"timeout": 2.0, "attempts": 3, "backoff": 0.5, "sleep": sleeps.append}
    options.update(kw)
    return fetch_source(url, **options), sleeps


def test_http_ok_returns_bytes_and_sha256(http_server: LocalServer) -> None:
    url = http_server.serve("/ok.csv", Route(body=CSV))
    download, sleeps = fast(url)
    assert download.content == CSV
    assert download.sha256 == hashlib.sha256(CSV).hexdigest()
    assert sleeps == []


def test_404_is_not_retried(http_server: LocalServer) -> None:
    url = http_server.serve("/gone.csv", Route(status=404, body=b"nope"))
    with pytest.raises(SourceError, match="HTTP 404"):
        fast(url)
    assert http_server.hits["/gone.csv"] == 1


def test_500_is_retried_then_fails(http_server: LocalServer) -> None:
    url = http_server.serve("/err.csv", Route(status=500, body=b"boom"))
    sleeps: list[float] = []
    with pytest.raises(SourceError, match=r"after 3 attempt\(s\): HTTP 500"):
        fetch_source(url, timeout=2, attempts=3, backoff=0.5, sleep=sleeps.append)
    assert http_server.hits["/err.csv"] == 3
    assert sleeps == [0.5, 1.0]  # exponential backoff


def test_503_twice_then_200_succeeds(http_server: LocalServer) -> None:
    url = http_server.serve("/flaky.csv", Route(status=503), Route(status=503), Route(body=CSV))
    download, sleeps = fast(url)
    assert download.content == CSV
    assert len(sleeps) == 2


def test_429_honours_retry_after(http_server: LocalServer) -> None:
    url = http_server.serve(
        "/busy.csv", Route(status=429, headers={"Retry-After": "7"}), Route(body=CSV)
    )
    download, sleeps = fast(url)
    assert download.content == CSV
    assert sleeps == [7.0]


def test_timeout_is_retried_then_fails(http_server: LocalServer) -> None:
    url = http_server.serve("/slow.csv", Route(body=CSV, delay=1.5))
    with pytest.raises(SourceError, match="timed out"):
        fast(url, timeout=0.3, attempts=2)
    assert http_server.hits["/slow.csv"] == 2


def test_connection_refused_names_url_and_hint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.csv"
    with pytest.raises(SourceError) as info:
        fast(url, attempts=2)
    message = str(info.value)
    assert url in message and "ConnectError" in message and "--source" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("route", "pattern"),
    [
        (Route(body=b""), "empty body"),
        (Route(body=b"   \n"), "empty body"),
        (Route(body=b"<!DOCTYPE html><html></html>"), "HTML page"),
        (Route(body=b"date,close\n", headers={"Content-Type": "text/html"}), "HTML page"),
        (Route(body=b"x" * 2000), "cap"),
    ],
    ids=["empty", "blank", "html-body", "html-type", "over-cap"],
)
def test_bad_bodies_are_rejected(http_server: LocalServer, route: Route, pattern: str) -> None:
    url = http_server.serve("/bad.csv", route)
    with pytest.raises(SourceError, match=pattern):
        fast(url, max_bytes=1000)
    assert http_server.hits["/bad.csv"] == 1


def test_gzip_bomb_is_capped_on_decoded_size(http_server: LocalServer) -> None:
    body = gzip.compress(b"0" * 50_000)
    url = http_server.serve(
        "/bomb.csv",
        Route(body=body, headers={"Content-Type": "text/csv", "Content-Encoding": "gzip"}),
    )
    assert len(body) < 1000
    with pytest.raises(SourceError, match="cap"):
        fast(url, max_bytes=10_000)


def test_local_path_and_file_url(tmp_path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(CSV)
    assert fast(str(path))[0].content == CSV
    assert fast(path.as_uri())[0].content == CSV


@pytest.mark.parametrize(
    ("source", "pattern"),
    [
        ("/definitely/not/here.csv", "not found"),
        ("ftp://example.org/x.csv", "unsupported source scheme"),
    ],
)
def test_bad_sources(source: str, pattern: str) -> None:
    with pytest.raises(SourceError, match=pattern):
        fast(source)


def test_directory_is_not_a_file(tmp_path) -> None:
    with pytest.raises(SourceError, match="directory"):
        fast(str(tmp_path))


BODY = b"date,close\n" + b"".join(b"2000-%02d-01,%d.5\n" % (m, 100 + m) for m in range(1, 13))


@pytest.mark.parametrize(
    ("route", "pattern", "hits"),
    [
        (Route(body=BODY, fault="reset"), "RemoteProtocolError", 2),
        (Route(body=BODY, fault="long_length"), "RemoteProtocolError", 2),
        (Route(body=BODY, fault="stall", delay=1.5), "timed out", 2),
        (Route(body=BODY, fault="drip", delay=0.05), "longer than 0.5 s", 2),
        (Route(body=BODY, fault="redirect_loop"), "too many redirects", 6),  # 1 + 5 hops
    ],
    ids=[
        "reset-mid-body",
        "content-length-too-long",
        "stall-after-headers",
        "slow-drip",
        "redirect-loop",
    ],
)
def test_network_faults_fail_in_bounded_time(
    http_server: LocalServer, route: Route, pattern: str, hits: int
) -> None:
    url = http_server.serve("/fault.csv", route)
    started = time.monotonic()
    with pytest.raises(SourceError, match=pattern):
        fetch_source(url, timeout=0.5, attempts=2, backoff=0.0, sleep=lambda _: None)
    assert time.monotonic() - started < 5.0
    assert http_server.hits["/fault.csv"] == hits


def test_short_content_length_reads_only_the_declared_bytes(http_server: LocalServer) -> None:
    url = http_server.serve("/short.csv", Route(body=BODY, fault="short_length"))
    download, _ = fast(url)
    assert download.content == BODY[: len(BODY) // 2]


def _download(location: str, content: bytes) -> Download:
    return Download(location, content, hashlib.sha256(content).hexdigest(), datetime.now(UTC))


GOOD = to_csv_bytes(synthetic_prices(40))
DATAHUB = GOOD.replace(b"date,close", b"Date,SP500")


def test_sources_are_tried_in_order_and_the_first_good_one_is_used() -> None:
    asked: list[str] = []

    def fetch(location: str) -> Download:
        asked.append(location)
        if location == "down.csv":
            raise SourceError("could not download down.csv after 4 attempt(s): HTTP 500")
        if location == "bad.csv":
            return _download(location, b"date,close\n2000-01-01,-1\n")
        return _download(location, DATAHUB)

    passed: list[tuple[str, str]] = []
    fetched = first_valid_source(
        ["down.csv", "bad.csv", "hub.csv#date=Date&value=SP500", "never.csv"],
        30,
        fetch=fetch,
        on_pass=lambda source, reason: passed.append((source, reason)),
    )
    assert asked == ["down.csv", "bad.csv", "hub.csv"]  # the mapping is not part of the fetch
    assert fetched.download.source == "hub.csv#date=Date&value=SP500"
    assert len(fetched.prices) == 40
    assert [s for s, _ in fetched.passed_over] == ["down.csv", "bad.csv"]
    assert "HTTP 500" in fetched.passed_over[0][1]
    assert fetched.passed_over[1][1].startswith("failed validation:")
    assert passed == list(fetched.passed_over)


@pytest.mark.parametrize(
    ("sources", "error", "message"),
    [
        (["a.csv"], SourceError, "^could not read a.csv$"),  # one source: its own error
        (
            ["a.csv", "b.csv"],
            SourceError,
            r"^no source gave a valid series: 1\) a.csv: could not read a.csv; 2\) b.csv: could"
            r" not read b.csv$",
        ),
        (["hub.csv"], ValidationFailed, "columns_present"),  # default columns, datahub layout
        (["a.csv", "hub.csv"], ValidationFailed, r"2\) hub.csv: failed validation: .*"),
    ],
)
def test_when_every_source_fails_one_line_names_each(sources, error, message) -> None:
    def fetch(location: str) -> Download:
        if location == "hub.csv":
            return _download(location, DATAHUB)
        raise SourceError(f"could not read {location}")

    with pytest.raises(error, match=message) as caught:
        first_valid_source(sources, 30, fetch=fetch)
    assert "\n" not in str(caught.value)


def test_the_mapping_fragment_never_reaches_the_server(http_server: LocalServer) -> None:
    url = http_server.serve("/hub.csv", Route(body=DATAHUB))
    fetched = first_valid_source([f"{url}#date=Date&value=SP500"], 30)
    assert http_server.hits["/hub.csv"] == 1  # a path with the fragment would be a 404
    assert fetched.download.source.endswith("#date=Date&value=SP500")
