"""Server-sent events framing, as both OpenAI and Anthropic streams use it.

OpenAI sends bare ``data:`` events and ends with ``data: [DONE]``; Anthropic names every event
(``event: content_block_delta``) and ends with ``message_stop``. Payloads are JSON from orjson, which
never contains a raw newline; a payload that does is split into several ``data:`` lines, as the SSE
spec requires, rather than corrupting the stream.
"""

from __future__ import annotations

from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def _lines(payload: bytes) -> bytes:
    if b"\n" not in payload and b"\r" not in payload:
        return b"data: " + payload + b"\n"
    return b"".join(b"data: " + line + b"\n" for line in payload.splitlines())


def data(payload: bytes) -> bytes:
    """An unnamed event: ``data: <payload>\\n\\n``."""
    return _lines(payload) + b"\n"


def event(name: str, payload: bytes) -> bytes:
    """A named event: ``event: <name>\\ndata: <payload>\\n\\n``."""
    return b"event: " + name.encode() + b"\n" + _lines(payload) + b"\n"


def json_data(obj: Any) -> bytes:
    return data(orjson.dumps(obj))


def json_event(name: str, obj: Any) -> bytes:
    return event(name, orjson.dumps(obj))


def comment(text: str = "") -> bytes:
    """A comment line, ignored by clients: a keep-alive that proxies do not buffer forever."""
    return b": " + text.encode() + b"\n\n"
