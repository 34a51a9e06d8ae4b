"""Anthropic streaming encoder: router deltas and Finish in, ready-to-send named SSE events out.

Hot path, so each ``content_block_delta`` is a precomputed prefix, the orjson-encoded text and a
precomputed suffix. The tests parse every event with the official SDK's types and rebuild the final
message with the SDK's own accumulator.

Usage arrives only with the router's Finish, after the text. ``message_start`` therefore carries the
caller's estimate of the input tokens (``input_tokens``, 0 if none) and ``message_delta`` the real totals
— input, output and cache counts — which the SDK takes over ``message_start``'s (Anthropic's own
``message_delta`` carries cumulative usage too). A failed Finish ends the stream with ``event: error``
and no ``message_stop`` (DESIGN promise 7); the SDK raises on it.

A request that asked for extended thinking opens no text block with the message: its thinking comes
first, so every block then opens when its first piece arrives (thinking, redacted thinking, text, tool
use), at the next index, closing the one before, as Anthropic streams them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from services.common.errors import TollgateError, UpstreamError
from services.edge import sse
from services.edge.anthropic_answer import anthropic_usage, stop_reason, stop_sequence, tool_uses
from services.edge.finish import finish_error, response_id, unsent_arguments
from services.edge.wire.anthropic_responses import ToolUseBlock
from tollgate.router.v1 import router_pb2

_BLOCK_START = sse.event("content_block_start", b'{"type":"content_block_start","index":0,'
                                                b'"content_block":{"type":"text","text":""}}')
_PING = sse.event("ping", b'{"type":"ping"}')
_BLOCK_STOP = sse.event("content_block_stop", b'{"type":"content_block_stop","index":0}')
_MESSAGE_STOP = sse.event("message_stop", b'{"type":"message_stop"}')
_DELTA_HEAD = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
               b'"delta":{"type":"text_delta","text":')
_DELTA_TAIL = b"}}\n\n"


class AnthropicMessageStream:
    """message_start, content_block_start, ping, content_block_delta…, content_block_stop,
    message_delta (stop reason, usage), message_stop — or an ``error`` event once something failed."""

    def __init__(self, request_id: str, model: str, *, input_tokens: int = 0, thinking: bool = False) -> None:
        self.id = response_id("msg_", request_id)
        self.model = model
        self.input_tokens = input_tokens
        self.started = False
        self.done = False
        # the content block open now: the text block at 0 until a call starts, or none yet (-1) when
        # thinking was asked for
        self._open = -1 if thinking else 0
        self._open_is_text = not thinking
        self._calls: dict[int, tuple[int, str]] = {}  # call index -> (its block, arguments sent so far)
        self._thinking: dict[int, int] = {}  # thinking block index -> its content block

    def start(self) -> bytes:
        """The opening events, once; ``delta`` and ``finish`` call it themselves when needed."""
        if self.started:
            return b""
        self.started = True
        message: dict[str, Any] = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        opening = sse.json_event("message_start", {"type": "message_start", "message": message})
        return opening + (_BLOCK_START + _PING if self._open == 0 else _PING)

    def delta(self, text: str) -> bytes:
        opening = b"" if self.started else self.start()
        if not text:
            return opening
        if self._open == 0 and self._open_is_text:
            return opening + _DELTA_HEAD + orjson.dumps(text) + _DELTA_TAIL
        if self._open_is_text:
            return opening + _text_delta(self._open, text)
        # text after a call (rare) or after thinking: a text block of its own after that block
        closing = self._close_open()
        index = self._next_block()
        self._open_is_text = True
        return opening + closing + sse.json_event("content_block_start", {
            "type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""},
        }) + _text_delta(index, text)

    def _next_block(self) -> int:
        """Open the next content block: ``_open`` moves on to it. The caller writes the end of the
        block before it (``_close_open``, first) and the start of this one."""
        self._open += 1
        self._open_is_text = False
        return self._open

    def _close_open(self) -> bytes:
        return _block_stop(self._open) if self._open >= 0 else b""

    def logprobs(self, content_json: str) -> bytes:
        return b""  # never asked for here: this API's requests cannot ask for them

    def thinking(self, pieces: Sequence[router_pb2.ThinkingDelta]) -> bytes:
        """A thinking block opens a block of its own (closing the one before), empty, as Anthropic
        opens one; its text follows as ``thinking_delta`` events and its signature as a
        ``signature_delta``. A redacted block opens whole. The router sends a block's pieces only while
        it is the newest, and before any text or call that came after it."""
        out = b"" if self.started else self.start()
        for piece in pieces:
            block = self._thinking.get(piece.index)
            if block is None:
                out += self._close_open()
                block = self._thinking[piece.index] = self._next_block()
                out += _thinking_start(block, piece.redacted)
            if block != self._open:
                continue
            if piece.thinking:
                out += _content_delta(block, {"type": "thinking_delta", "thinking": piece.thinking})
            if piece.signature:
                out += _content_delta(block, {"type": "signature_delta", "signature": piece.signature})
        return out

    def tool_calls(self, fragments: Sequence[router_pb2.ToolCallDelta]) -> bytes:
        """A call opens a ``tool_use`` block of its own (closing the block before it) and its argument
        pieces follow as ``input_json_delta`` events, as Anthropic streams one. A piece of a call whose
        block is closed cannot be sent: the router sends none (it stops streaming when a provider
        interleaves calls), and ``finish`` refuses the answer if the rest cannot follow."""
        out = b"" if self.started else self.start()
        for fragment in fragments:
            known = self._calls.get(fragment.index)
            if known is None:
                out += self._close_open()
                index = self._next_block()
                out += _tool_use_start(index, fragment.id, fragment.name)
                known = (index, "")
            block, sent = known
            if fragment.arguments and block == self._open:
                out += _json_delta(block, fragment.arguments)
                sent += fragment.arguments
            self._calls[fragment.index] = (block, sent)
        return out

    def keep_alive(self) -> bytes:
        """A ``ping`` event, as Anthropic sends during long waits; the SDK skips it. Before anything
        else, the opening events (which end with a ping): Anthropic's streams open with
        ``message_start`` at once and ping while the model works."""
        return _PING if self.started else self.start()

    def finish(self, finish: router_pb2.Finish) -> bytes:
        """The end of the stream: clean (stop reason and usage) or, for a failed Finish, an error event.

        Raises the error when a clean Finish cannot be written in this API (tool arguments that are not
        a JSON object), so that the caller records the request as failed and ends with ``error``."""
        if (error := finish_error(finish)) is not None:
            return self.error(error)
        uses = tool_uses(finish)
        usage = anthropic_usage(finish.usage).model_dump()
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason(finish.finish_reason), "stop_sequence": stop_sequence(finish),
            },
            "usage": {"output_tokens": usage.pop("output_tokens"), **usage},
        }
        out = self.start() + self._rest_of_calls(finish) + self._close_open()
        for use in uses[len(self._calls):]:  # calls the fragments never opened: whole, after the rest
            out += _tool_use_events(self._next_block(), use)
        self.done = True
        return out + sse.json_event("message_delta", delta) + _MESSAGE_STOP

    def _rest_of_calls(self, finish: router_pb2.Finish) -> bytes:
        """What streamed calls still lack: only the open block can take it."""
        out = b""
        for index, (block, sent) in self._calls.items():
            whole = finish.tool_calls[index].arguments_json if index < len(finish.tool_calls) else None
            rest = None if whole is None else unsent_arguments(sent, whole)
            if rest is None or (rest and block != self._open):
                raise UpstreamError("the model's tool calls arrived out of order, which the Messages API "
                                    "cannot stream", code="upstream_bad_response")
            if rest:
                out += _json_delta(block, rest)
        return out

    def error(self, exc: TollgateError) -> bytes:
        """End the stream with ``event: error`` (no message_stop), e.g. when the router stream broke."""
        self.done = True
        return sse.json_event("error", exc.to_anthropic())


def _block_stop(index: int) -> bytes:
    return _BLOCK_STOP if index == 0 else sse.json_event(
        "content_block_stop", {"type": "content_block_stop", "index": index})


def _tool_use_start(index: int, call_id: str, name: str) -> bytes:
    return sse.json_event("content_block_start", {
        "type": "content_block_start", "index": index,
        "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
    })


def _thinking_start(index: int, redacted: str) -> bytes:
    block = ({"type": "redacted_thinking", "data": redacted} if redacted
             else {"type": "thinking", "thinking": "", "signature": ""})
    return sse.json_event("content_block_start", {
        "type": "content_block_start", "index": index, "content_block": block,
    })


def _content_delta(index: int, delta: dict[str, str]) -> bytes:
    event = {"type": "content_block_delta", "index": index, "delta": delta}
    return sse.json_event("content_block_delta", event)


def _json_delta(index: int, partial_json: str) -> bytes:
    return _content_delta(index, {"type": "input_json_delta", "partial_json": partial_json})


def _text_delta(index: int, text: str) -> bytes:
    return _content_delta(index, {"type": "text_delta", "text": text})


def _tool_use_events(index: int, use: ToolUseBlock) -> bytes:
    """A whole tool call as Anthropic streams one: the block opens with an empty input, the input
    follows as one ``input_json_delta``, the block closes. After the text block (index 0)."""
    return (_tool_use_start(index, use.id, use.name) + _json_delta(index, orjson.dumps(use.input).decode())
            + _block_stop(index))

