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

The Responses API has its own place for this, a reasoning item's ``encrypted_content``, which a
stateless client (``store: false``) asks for with ``include: ["reasoning.encrypted_content"]`` and
sends back with the item. There a signed or redacted block travels whole, encoded (``tg1.`` and the
block as base64url JSON): not encrypted, since its secret is Anthropic's signature, which Anthropic
checks when the block comes back.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from services.edge.wire.openai import ReasoningDetail
from tollgate.router.v1 import router_pb2

ANTHROPIC_FORMAT = "anthropic-claude-v1"  # OpenRouter's name for a block only Anthropic can read back
ENCODED_PREFIX = "tg1."  # a Responses reasoning item's encrypted_content written here (version 1)


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


def encoded_block(thinking: str, signature: str, redacted: str) -> str | None:
    """A reasoning item's ``encrypted_content`` for a signed or redacted block; None for unsigned text."""
    if redacted:
        fields = {"redacted": redacted}
    elif signature:
        fields = {"thinking": thinking, "signature": signature}
    else:
        return None
    return ENCODED_PREFIX + base64.urlsafe_b64encode(orjson.dumps(fields)).decode()


def decoded_detail(encrypted: object) -> dict[str, Any] | None:
    """The ``reasoning_details`` entry an item's ``encrypted_content`` written here stands for; None for
    anything else (OpenAI's own encrypted reasoning, which no provider here can read, or a damaged one)."""
    if not isinstance(encrypted, str) or not encrypted.startswith(ENCODED_PREFIX):
        return None
    try:
        fields = orjson.loads(base64.urlsafe_b64decode(encrypted.removeprefix(ENCODED_PREFIX)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(fields, dict):
        return None
    if isinstance(fields.get("redacted"), str):
        return {"type": "reasoning.encrypted", "data": fields["redacted"]}
    if isinstance(fields.get("thinking"), str) and isinstance(fields.get("signature"), str):
        return {"type": "reasoning.text", "text": fields["thinking"], "signature": fields["signature"]}
    return None
