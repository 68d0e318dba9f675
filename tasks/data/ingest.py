"""Download the monthly price CSV from http(s), ``file://`` or a local path; sources in order.

The only network code of the pipeline, and so the only retries.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.errors import SourceError, ValidationFailed
from core.settings import Settings
from core.sources import parse_source
from tasks.data.validate import parse_prices

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0
HTML_PREFIXES = (b"<!doctype html", b"<html", b"<head", b"<body")


@dataclass(frozen=True)
class Download:
    """Raw bytes of one fetched source with their sha256 and fetch time (UTC)."""

    source: str
    content: bytes
    sha256: str
    fetched_at: datetime


class _Retryable(Exception):
    """A transient failure worth another attempt, with an optional server-given delay."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _check_body(source: str, content: bytes, content_type: str = "") -> None:
    if not content.strip():
        raise SourceError(f"{source} returned an empty body")
    head = content.lstrip()[:64].lower()
    if "html" in content_type.lower() or head.startswith(HTML_PREFIXES):
        raise SourceError(f"{source} returned an HTML page, not CSV")


def _read_path(source: str, path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(f"{source} is {size} bytes, over the {max_bytes}-byte cap")
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"source file not found: {path}") from None
    except IsADirectoryError:
        raise SourceError(f"source is a directory, not a file: {path}") from None
    except OSError as exc:
        raise SourceError(f"cannot read source file {path}: {exc.strerror}") from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return None


def _http_once(url: str, timeout: float, max_bytes: int) -> bytes:
    deadline = time.monotonic() + timeout
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5) as client,
            client.stream("GET", url) as response,
        ):
            status = response.status_code
            if status in RETRYABLE_STATUS:
                raise _Retryable(f"HTTP {status} {response.reason_phrase}", _retry_after(response))
            if status >= 400:
                raise SourceError(f"HTTP {status} {response.reason_phrase} from {url}")
            chunks: list[bytes] = []
            total = 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise SourceError(f"{url} sent more than the {max_bytes}-byte cap")
                if time.monotonic() > deadline:
                    raise _Retryable(f"download took longer than {timeout:g} s")
                chunks.append(chunk)
            content = b"".join(chunks)
            _check_body(url, content, response.headers.get("content-type", ""))
            return content
    except httpx.TooManyRedirects:
        raise SourceError(f"too many redirects from {url}") from None
    except httpx.TimeoutException as exc:
        raise _Retryable(f"timed out after {timeout:g} s ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc}") from None


def fetch_source(
    source: str,
    *,
    timeout: float = 30.0,
    max_bytes: int = 10_000_000,
    attempts: int = 4,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, str, float], None] | None = None,
) -> Download:
    """Return the bytes behind an http(s) URL, ``file://`` URL or local path, with their sha256.

    Connection errors, timeouts, HTTP 429 and 5xx are retried with exponential backoff
    (``backoff * 2**k`` seconds, or the server's ``Retry-After``); anything else fails at once.

    Raises:
        SourceError: the source cannot be read, with a one-line reason.
    """
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        content = None
        last_error = ""
        for attempt in range(1, attempts + 1):
            try:
                content = _http_once(source, timeout, max_bytes)
                break
            except _Retryable as exc:
                last_error = str(exc)
                if attempt == attempts:
                    break
                delay = (
                    exc.retry_after if exc.retry_after is not None else backoff * 2 ** (attempt - 1)
                )
                if on_retry is not None:
                    on_retry(attempt, last_error, delay)
                sleep(delay)
        if content is None:
            raise SourceError(
                f"could not download {source} after {attempts} attempt(s): {last_error}; "
                "check the network or pass --source with a local CSV path"
            )
    elif scheme == "file":
        path = Path(url2pathname(unquote(parts.path)))
        content = _read_path(source, path, max_bytes)
        _check_body(source, content)
    elif scheme == "" or len(scheme) == 1:  # plain path (a one-letter scheme is a drive)
        content = _read_path(source, Path(source), max_bytes)
        _check_body(source, content)
    else:
        raise SourceError(
            f"unsupported source scheme {scheme!r} in {source}; use http, https, file or a path"
        )
    return Download(
        source=source,
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        fetched_at=datetime.now(UTC),
    )


@dataclass(frozen=True)
class Fetched:
    """The first source that downloaded and validated, and why earlier ones were passed over.

    ``passed_over`` holds ``(source, reason)`` pairs in the order they were tried.
    """

    download: Download
    prices: pd.DataFrame  # month, close
    passed_over: tuple[tuple[str, str], ...] = ()


def first_valid_source(
    sources: Sequence[str],
    min_rows: int,
    *,
    date_column: str = "date",
    value_column: str = "close",
    fetch: Callable[[str], Download] = fetch_source,
    on_pass: Callable[[str, str], None] | None = None,
) -> Fetched:
    """Try ``sources`` in order; return the first whose bytes download and validate.

    Each source is fetched with ``fetch`` (its retries included) from its location, without
    the ``#`` mapping, and parsed with its own column mapping, else ``date_column`` and
    ``value_column``. ``on_pass(source, reason)`` hears of each source passed over.

    Raises:
        SourceError: one source only, unreadable; or several, none valid (names each failure).
        ValidationFailed: one source only, whose series broke the schema; or several, none
            valid, at least one of them readable (the first such one's failures).
    """
    if not sources:
        raise SourceError("no source given: pass --source or set SP500_SOURCE")
    passed: list[tuple[str, str]] = []
    rejected: ValidationFailed | None = None
    for text in sources:
        spec = parse_source(text)
        try:
            download = fetch(spec.location)
            prices = parse_prices(
                download.content,
                min_rows,
                spec.date_column or date_column,
                spec.value_column or value_column,
            )
        except ValidationFailed as exc:
            if len(sources) == 1:
                raise
            rejected = rejected or exc
            reason = f"failed validation: {exc}"
        except SourceError as exc:
            if len(sources) == 1:
                raise
            reason = str(exc)
        else:
            return Fetched(replace(download, source=spec.text), prices, tuple(passed))
        passed.append((spec.text, reason))
        if on_pass is not None:
            on_pass(spec.text, reason)
    message = "no source gave a valid series: " + "; ".join(
        f"{k}) {source}: {reason}" for k, (source, reason) in enumerate(passed, start=1)
    )
    if rejected is not None:
        raise ValidationFailed(message, rejected.failures)
    raise SourceError(message)


@task(name="fetch_prices", cache_policy=NO_CACHE)
def fetch_prices(settings: Settings, min_rows: int) -> Fetched:
    """Download and validate the first good source; retries (network only) are warnings."""
    logger = get_run_logger()

    def on_retry(attempt: int, error: str, delay: float) -> None:
        logger.warning("attempt %d failed (%s); retrying in %.1f s", attempt, error, delay)

    def on_pass(source: str, reason: str) -> None:
        logger.warning("passed over %s: %s", source, reason)

    def fetch(location: str) -> Download:
        return fetch_source(
            location,
            timeout=settings.timeout_seconds,
            max_bytes=settings.max_bytes,
            attempts=settings.download_attempts,
            backoff=settings.backoff_seconds,
            on_retry=on_retry,
        )

    fetched = first_valid_source(
        settings.source,
        min_rows,
        date_column=settings.date_column,
        value_column=settings.value_column,
        fetch=fetch,
        on_pass=on_pass,
    )
    download, prices = fetched.download, fetched.prices
    logger.info(
        "downloaded %d bytes from %s (sha256 %s); validated %d months, %s … %s",
        len(download.content),
        download.source,
        download.sha256[:12],
        len(prices),
        f"{prices['month'].iloc[0]:%Y-%m}",
        f"{prices['month'].iloc[-1]:%Y-%m}",
    )
    return fetched
