"""An OpenAI-compatible conversation's shape: the router's turns as Chat Completions messages.

Kept apart from the backend (``openai_compat``), which moves them and reads the answer, as
``anthropic_messages`` is for Anthropic.
"""

from __future__ import annotations

from typing import Any

from services.router.backends import ChatTurn, text_and_images


def openai_turn(turn: ChatTurn, tool_calls: list[dict[str, Any]] | None) -> dict[str, Any]:
    """One turn as a message; an assistant turn carries the calls it made (``tool_calls``)."""
    out: dict[str, Any] = {"role": turn.role, "content": _parts(turn) if turn.images else turn.content}
    if tool_calls and turn.role == "assistant":
        out["tool_calls"] = tool_calls
        out["content"] = turn.content or None  # a turn that only calls tools has no content
    if turn.name:
        out["name"] = turn.name
    if turn.tool_call_id:
        out["tool_call_id"] = turn.tool_call_id
    return out


def _parts(turn: ChatTurn) -> list[dict[str, Any]]:
    """A turn with images as OpenAI's content parts, in the client's order."""
    return [
        {"type": "text", "text": part} if isinstance(part, str) else {"type": "image_url", "image_url": (
            {"url": part.url, "detail": part.detail} if part.detail else {"url": part.url}
        )}
        for part in text_and_images(turn)
    ]
