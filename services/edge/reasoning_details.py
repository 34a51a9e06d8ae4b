"""A model's thinking in OpenAI's APIs, kept whole: ``reasoning_details`` (OpenRouter's field, which
the Vercel AI SDK and other OpenAI-API clients read and send back).

``reasoning`` carries a model's reasoning as text, enough to show it. A Claude model's thinking is more
than its text: each block is signed (or redacted, encrypted), and Anthropic requires a tool loop's
last assistant turn to come back with those blocks unchanged. So Chat Completions answers also carry
the blocks as ``reasoning_details``, one entry per block in the model's order (``reasoning.text`` with
its ``signature``; ``reasoning.encrypted`` with its ``data``), streamed as pieces under the block's
``index``; and an assistant message that sends them back has its signed and encrypted blocks passed on
to the provider, ahead of the turn's text and calls, where a Claude model wrote them. Unsigned
reasoning (a self-hosted reasoning model's) is shown but not sent back: no provider takes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from services.edge.wire.openai import ReasoningDetail
from tollgate.router.v1 import router_pb2

ANTHROPIC_FORMAT = "anthropic-claude-v1"  # OpenRouter's name for a block only Anthropic can read back


def _entry(index: int, block: router_pb2.ThinkingBlock | router_pb2.ThinkingDelta) -> dict[str, Any]:
    if block.redacted:
        return {"type": "reasoning.encrypted", "data": block.redacted, "format": ANTHROPIC_FORMAT,
                "index": index}
    entry: dict[str, Any] = {"type": "reasoning.text", "index": index}
    if block.thinking:
        entry["text"] = block.thinking
    if block.signature:
        entry |= {"signature": block.signature, "format": ANTHROPIC_FORMAT}
    return entry


def answer_details(blocks: Sequence[router_pb2.ThinkingBlock]) -> list[dict[str, Any]] | None:
    """A whole answer's ``reasoning_details``, None when it has no thinking."""
    return [_entry(index, block) for index, block in enumerate(blocks)] or None


def piece_detail(piece: router_pb2.ThinkingDelta) -> dict[str, Any]:
    """A streamed piece of block ``piece.index``: its next text, its signature, or a redacted block."""
    return _entry(piece.index, piece)


def sent_back(details: Iterable[ReasoningDetail]) -> list[router_pb2.ThinkingBlock]:
    """The blocks of an assistant message's ``reasoning_details`` a provider can take back: pieces
    joined by index (a client may send the streamed pieces as they came), then the signed and the
    encrypted ones, in order, at the start of the turn."""
    blocks: dict[int, dict[str, str]] = {}
    for position, detail in enumerate(details):
        index = detail.index if detail.index is not None else position
        block = blocks.setdefault(index, {"thinking": "", "signature": "", "redacted": ""})
        if detail.type == "reasoning.encrypted" and detail.data:
            block["redacted"] = detail.data
        elif detail.type == "reasoning.text":
            block["thinking"] += detail.text or ""
            block["signature"] = detail.signature or block["signature"]
    return [
        router_pb2.ThinkingBlock(thinking=b["thinking"], signature=b["signature"], redacted=b["redacted"])
        for _, b in sorted(blocks.items()) if b["redacted"] or b["signature"]
    ]
