"""Anthropic response bodies and stream events we return, as Anthropic's public spec has them.

The streaming encoder in ``services.edge.streams_anthropic`` writes these shapes as ready-made bytes
for speed; the tests hold those bytes against these models and against the official SDK's types.
"""

from __future__ import annotations

from typing import Any, Literal

from services.edge.wire.base import ResponseModel

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class TextBlock(ResponseModel):
    type: Literal["text"] = "text"
    text: str


class ToolUseBlock(ResponseModel):
    """A tool call; ``input`` is the arguments as a JSON object. In a stream it opens with ``input: {}``
    and the arguments follow as one ``input_json_delta``."""

    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class ThinkingBlock(ResponseModel):
    """Extended thinking, with the provider's signature (a client sends the block back unchanged). In a
    stream it opens empty, its text follows as ``thinking_delta`` events and the signature as one
    ``signature_delta``."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str


class RedactedThinkingBlock(ResponseModel):
    """Thinking the provider encrypted; whole in its ``content_block_start``."""

    type: Literal["redacted_thinking"] = "redacted_thinking"
    data: str


ContentBlock = TextBlock | ToolUseBlock | ThinkingBlock | RedactedThinkingBlock


class Usage(ResponseModel):
    """Anthropic counts ``input_tokens`` without cache reads and cache writes (they have their own fields)."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class Message(ResponseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    content: list[ContentBlock]
    model: str
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: Usage


class MessageStartEvent(ResponseModel):
    type: Literal["message_start"] = "message_start"
    message: Message


class ContentBlockStartEvent(ResponseModel):
    type: Literal["content_block_start"] = "content_block_start"
    index: int
    content_block: ContentBlock


class PingEvent(ResponseModel):
    type: Literal["ping"] = "ping"


class TextDelta(ResponseModel):
    type: Literal["text_delta"] = "text_delta"
    text: str


class InputJSONDelta(ResponseModel):
    type: Literal["input_json_delta"] = "input_json_delta"
    partial_json: str


class ThinkingDelta(ResponseModel):
    type: Literal["thinking_delta"] = "thinking_delta"
    thinking: str


class SignatureDelta(ResponseModel):
    type: Literal["signature_delta"] = "signature_delta"
    signature: str


class ContentBlockDeltaEvent(ResponseModel):
    type: Literal["content_block_delta"] = "content_block_delta"
    index: int
    delta: TextDelta | InputJSONDelta | ThinkingDelta | SignatureDelta


class ContentBlockStopEvent(ResponseModel):
    type: Literal["content_block_stop"] = "content_block_stop"
    index: int


class MessageDelta(ResponseModel):
    stop_reason: StopReason | None
    stop_sequence: str | None = None


class MessageDeltaUsage(ResponseModel):
    """Cumulative totals at the end of the stream (the SDK overwrites, not adds, what message_start said)."""

    output_tokens: int
    input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class MessageDeltaEvent(ResponseModel):
    type: Literal["message_delta"] = "message_delta"
    delta: MessageDelta
    usage: MessageDeltaUsage


class MessageStopEvent(ResponseModel):
    type: Literal["message_stop"] = "message_stop"


class ErrorDetail(ResponseModel):
    type: str
    message: str


class ErrorEvent(ResponseModel):
    """Ends a stream that failed after it began; no message_stop follows it."""

    type: Literal["error"] = "error"
    error: ErrorDetail


StreamEvent = (
    MessageStartEvent
    | ContentBlockStartEvent
    | PingEvent
    | ContentBlockDeltaEvent
    | ContentBlockStopEvent
    | MessageDeltaEvent
    | MessageStopEvent
    | ErrorEvent
)
