"""The router's answer in Anthropic's Messages format: the non-streamed ``Message``, and the pieces the
stream encoder (``streams_anthropic``) shares with it (stop reason, usage, tool-use blocks).

Content comes back in the order the model wrote it: thinking blocks where they came in the text or
after a call, the text cut there, then the calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from services.common.errors import UpstreamError
from services.edge.finish import finish_error, response_id
from services.edge.wire import anthropic_responses as r
from tollgate.router.v1 import router_pb2

_STOP_REASONS: dict[str, r.StopReason] = {
    "stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "stop_sequence": "stop_sequence",
    "content_filter": "refusal",
}


def stop_reason(reason: str) -> r.StopReason:
    """``stop`` is ``end_turn``: a stop sequence is reported only when the backend said which one
    ended the answer (``finish_reason="stop_sequence"``; Anthropic providers do, OpenAI's API does not)."""
    return _STOP_REASONS.get(reason, "end_turn")


def stop_sequence(finish: router_pb2.Finish) -> str | None:
    return finish.stop_sequence if finish.finish_reason == "stop_sequence" and finish.stop_sequence else None


def anthropic_usage(usage: router_pb2.Usage) -> r.Usage:
    """Anthropic's ``input_tokens`` excludes cache reads and writes, exactly as the router counts it."""
    return r.Usage(
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        cache_creation_input_tokens=usage.cache_write_tokens,
        cache_read_input_tokens=usage.cached_input_tokens,
    )


def tool_uses(finish: router_pb2.Finish) -> list[r.ToolUseBlock]:
    """The Finish's tool calls as ``tool_use`` blocks, whose ``input`` must be a JSON object. A model
    behind an OpenAI-compatible provider may write arguments that are not one; that answer cannot be
    given in Anthropic's format, and saying so beats handing the client an altered call."""
    blocks = []
    for call in finish.tool_calls:
        try:
            given = orjson.loads(call.arguments_json or "{}")
        except orjson.JSONDecodeError:
            given = None
        if not isinstance(given, dict):
            raise UpstreamError(
                f"the model called tool {call.name!r} with arguments that are not a JSON object, which "
                "the Messages API cannot return", code="upstream_bad_response",
            )
        blocks.append(r.ToolUseBlock(id=call.id, name=call.name, input=given))
    return blocks


def thinking_block(block: router_pb2.ThinkingBlock) -> r.ThinkingBlock | r.RedactedThinkingBlock:
    if block.redacted:
        return r.RedactedThinkingBlock(data=block.redacted)
    return r.ThinkingBlock(thinking=block.thinking, signature=block.signature)


def answer_content(text: str, uses: list[r.ToolUseBlock], thinking: Sequence[router_pb2.ThinkingBlock],
                   ) -> list[r.ContentBlock]:
    """The answer's blocks in the order the model wrote them: thinking where it came in the text or
    after a call (``ThinkingBlock.offset`` and ``after_calls``), the text (cut there), then the calls.
    A text block even when empty if nothing else was written, as Anthropic answers."""
    content: list[r.ContentBlock] = []
    start = 0
    pending = list(thinking)
    while pending and pending[0].after_calls == 0 and pending[0].offset < len(text):
        cut = max(pending[0].offset, start)
        if cut > start:
            content.append(r.TextBlock(text=text[start:cut]))
            start = cut
        content.append(thinking_block(pending.pop(0)))
    if text[start:] or not (uses or content or pending):
        content.append(r.TextBlock(text=text[start:]))
    for calls, use in enumerate(uses):
        while pending and pending[0].after_calls <= calls:
            content.append(thinking_block(pending.pop(0)))
        content.append(use)
    return content + [thinking_block(b) for b in pending]


def build_message(request_id: str, model: str, text: str, finish: router_pb2.Finish) -> r.Message:
    """The non-streamed answer; raises the Finish's error instead when generation failed."""
    if (error := finish_error(finish)) is not None:
        raise error
    content = answer_content(text, tool_uses(finish), finish.thinking)
    return r.Message(
        id=response_id("msg_", request_id), content=content, model=model,
        stop_reason=stop_reason(finish.finish_reason), stop_sequence=stop_sequence(finish),
        usage=anthropic_usage(finish.usage),
    )
