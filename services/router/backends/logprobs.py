"""Token log probabilities from an OpenAI-compatible server, in either of OpenAI's two formats.

Chat Completions (``logprobs: true``): each streamed chunk's ``logprobs.content`` lists its tokens'
entries. Legacy completions (``logprobs: <n>``): each chunk's ``logprobs`` holds four parallel lists,
``tokens``, ``token_logprobs``, ``top_logprobs`` (a ``{token: logprob}`` map per token, null for a
prompt's first token) and ``text_offset``; the router reads them per token, so that a whole answer's
entries are its chunks' entries one after another, as for a chat, and the edge turns them back into
the four lists. Either way the entries go on with the text they came with (``Delta.logprobs_json``).
Only OpenAI's fields go on, each of its type or null, since the edge writes them into the client's
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


def _top_map(value: Any) -> dict[str, float | int | None] | None:
    if not isinstance(value, dict):
        return None
    return {token: _number(logprob) for token, logprob in value.items() if isinstance(token, str)}


def completion_entries(logprobs: Any) -> list[dict[str, Any]]:
    """A legacy completion chunk's ``logprobs`` as one entry per token (``token``, ``logprob``,
    ``top_logprobs``, ``text_offset``); [] when it has none. The lists are read up to the shortest
    ``tokens``: a server that sends fewer of the others gets nulls, not another token's values."""
    if not isinstance(logprobs, dict) or not isinstance(tokens := logprobs.get("tokens"), list):
        return []

    def column(name: str) -> list[Any]:
        values = logprobs.get(name)
        return values if isinstance(values, list) else []

    chosen, tops, offsets = column("token_logprobs"), column("top_logprobs"), column("text_offset")
    out = []
    for i, token in enumerate(tokens):
        offset = offsets[i] if i < len(offsets) else None
        out.append({
            "token": token if isinstance(token, str) else "",
            "logprob": _number(chosen[i]) if i < len(chosen) else None,
            "top_logprobs": _top_map(tops[i]) if i < len(tops) else None,
            "text_offset": offset if isinstance(offset, int) and not isinstance(offset, bool) else None,
        })
    return out
