"""Reading a feed: at most ``max_bytes`` from a URL or a file, then strict JSON.

A feed is untrusted input. It is read with a hard size cap (a larger one is refused whole, never
truncated), decoded as UTF-8, and parsed with every non-integer number as a ``Decimal`` — the text of
the number, never a float — and ``NaN``/``Infinity`` refused. Any failure is a ``FeedError`` whose
message says why; nothing is applied from a feed that failed here.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from services.catalog.sync.feed import FeedError
from services.catalog.sync.sources import SyncSource
from services.common.numbers import whole_number

__all__ = ["FeedError", "parse_json", "read_feed", "request_url"]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse_json(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FeedError("the feed is not UTF-8 text") from None
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except RecursionError:
        raise FeedError("the feed is not JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, an integer with too many digits
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise FeedError(f"the feed is not JSON: {reason[:200]}") from None


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise FeedError(f"cannot read the feed file: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_bytes:
        raise FeedError(f"the feed is larger than the {max_bytes}-byte cap (CATALOG_SYNC_MAX_BYTES)")
    return data


def request_url(source: SyncSource) -> str:
    """What is fetched: a model list lives at ``<base URL>/models``; a price feed at its own URL."""
    assert source.url is not None
    if source.format == "openai-models":
        return source.url.rstrip("/") + "/models"
    return source.url


def _headers(source: SyncSource, api_key: str | None) -> dict[str, str]:
    headers = {"accept": "application/json", "user-agent": "tollgate-catalog-sync/1"}
    if source.format == "openai-models" and source.backend == "anthropic":
        headers["anthropic-version"] = "2023-06-01"  # Anthropic's API requires it on every call
        if api_key is not None:
            headers["x-api-key"] = api_key
    elif api_key is not None:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


async def _read_url(source: SyncSource, max_bytes: int, timeout: float, api_key: str | None) -> bytes:
    url = request_url(source)
    chunks: list[bytes] = []
    size = 0
    try:
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=True, max_redirects=3) as client,
            client.stream("GET", url, headers=_headers(source, api_key)) as reply,
        ):
            if reply.status_code != 200:
                raise FeedError(f"the feed answered HTTP {reply.status_code}")
            declared = reply.headers.get("content-length", "")
            if (declared_size := whole_number(declared)) is not None and declared_size > max_bytes:
                raise FeedError(f"the feed is larger than the {max_bytes}-byte cap (CATALOG_SYNC_MAX_BYTES)")
            async for chunk in reply.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(
                        f"the feed is larger than the {max_bytes}-byte cap (CATALOG_SYNC_MAX_BYTES)"
                    )
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise FeedError(f"cannot fetch the feed: {type(exc).__name__}") from None
    return b"".join(chunks)


async def read_feed(source: SyncSource, *, max_bytes: int, timeout: float, api_key: str | None) -> Any:
    """The parsed JSON document of ``source`` (or ``FeedError``)."""
    if source.file is not None:
        data = _read_file(source.file, max_bytes)
    else:
        data = await _read_url(source, max_bytes, timeout, api_key)
    return parse_json(data)
