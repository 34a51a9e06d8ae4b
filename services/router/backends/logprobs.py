"""Token log probabilities from an OpenAI-compatible server (Chat Completions' ``logprobs``).

Each streamed chunk's ``logprobs.content`` lists its tokens' entries; the router passes them on with
the text they came with (``Delta.logprobs_json``). Only OpenAI's fields go on (``token``, ``logprob``,
``bytes``, ``top_logprobs``), each of its type or null, since the edge writes them into the client's
answer as they are: whatever else a server adds stays behind.
"""

from __future__ import annotations

from typing import Any


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _bytes(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256
                                       for b in value):
        return value
    return None


def _token(entry: dict[str, Any]) -> dict[str, Any]:
    token = entry.get("token")
    return {"token": token if isinstance(token, str) else "", "logprob": _number(entry.get("logprob")),
            "bytes": _bytes(entry.get("bytes"))}


def content_entries(logprobs: Any) -> list[dict[str, Any]]:
    """A chunk's ``logprobs.content`` entries, reduced to OpenAI's fields; [] when it has none."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return []
    out = []
    for entry in content:
        if not isinstance(entry, dict):
            continue
        top = entry.get("top_logprobs")
        out.append({**_token(entry), "top_logprobs": [
            _token(t) for t in top if isinstance(t, dict)] if isinstance(top, list) else []})
    return out
