"""OpenAI streaming encoders: router deltas and Finish in, ready-to-send SSE bytes out.

This is the hot path (one call per token), so every chunk is a precomputed byte prefix, the
orjson-encoded text and a precomputed suffix — no pydantic, no dict per chunk. The tests parse every
chunk with the official SDK's types and with ``wire.openai_responses``.

A stream opens lazily: the first ``delta`` (or ``finish``) emits the opening chunk, so nothing reaches
the client before the router's first delta and a failure before it can still be a plain HTTP error.
It closes either cleanly (final chunk, usage chunk when ``stream_options.include_usage``, ``[DONE]``)
or with one ``data: {"error": ...}`` event and no ``[DONE]`` (DESIGN promise 7): the SDKs raise on it.

An answer of several choices (``n``, a batch of completion prompts: ``choices.py``) has one encoder
per choice (``for_choice``: the same id and ``created``, its own ``index`` in every chunk); each ends
its choice (``end_choice``), and the first one closes the stream (``close``) once every choice has ended.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from services.common.errors import TollgateError
from services.edge import sse
from services.edge.convert_completions import legacy_logprobs
from services.edge.convert_openai import (
    chat_finish_reason,
    completion_finish_reason,
    openai_usage,
    tool_calls,
)
from services.edge.finish import finish_error, response_id, unsent_arguments
from services.edge.reasoning_details import piece_detail
from tollgate.router.v1 import router_pb2

_KEEP_ALIVE = sse.comment("keep-alive")


class _OpenAIStream:
    """What chat and completion streams share: lazy opening, error ending, the usage chunk."""

    _object: bytes  # the chunk's "object"
    _prefix: str  # the response id's prefix
    _delta_open: bytes  # a content chunk's choices, up to the text (``{index}``: the choice's index)
    _delta_close: bytes  # ... and after it

    def __init__(
        self, request_id: str, model: str, *, include_usage: bool, created: int | None = None, index: int = 0
    ) -> None:
        self.request_id, self.model = request_id, model
        self.id = response_id(self._prefix, request_id)
        self.created = int(time.time()) if created is None else created
        self.include_usage = include_usage
        self._index = str(index).encode()
        self.started = False
        self.done = False
        self._head = (
            b'data: {"id":' + orjson.dumps(self.id) + b',"object":"' + self._object + b'","created":'
            + str(self.created).encode() + b',"model":' + orjson.dumps(model) + b',"choices":'
        )
        self._tail = (b',"usage":null' if include_usage else b"") + b"}\n\n"
        self._delta_head = self._head + self._delta_open.replace(b"{index}", self._index)
        self._delta_tail = self._delta_close.replace(b"{index}", self._index) + self._tail

    def for_choice(self, index: int) -> _OpenAIStream:
        """The encoder of another choice of the same answer."""
        return type(self)(self.request_id, self.model, include_usage=self.include_usage, created=self.created,
                          index=index)

    def _opening(self) -> bytes:
        return b""

    def start(self) -> bytes:
        """The opening bytes, once; ``delta`` and ``finish`` call it themselves when needed."""
        if self.started:
            return b""
        self.started = True
        return self._opening()

    def _final_choice(self, reason: str) -> bytes:
        raise NotImplementedError

    def _tool_calls(self, finish: router_pb2.Finish) -> bytes:
        return b""

    def tool_calls(self, fragments: Sequence[router_pb2.ToolCallDelta]) -> bytes:
        return b""  # only chat answers call tools

    def thinking(self, pieces: Sequence[router_pb2.ThinkingDelta]) -> bytes:
        return b""  # only the Messages API asks for thinking, and OpenAI's APIs have no place for it

    def logprobs(self, content_json: str) -> bytes:
        return b""  # only Chat Completions and legacy completions ask for them

    def finish(self, finish: router_pb2.Finish) -> bytes:
        """The end of the stream: clean (with usage when asked) or, for a failed Finish, an error event."""
        if (error := finish_error(finish)) is not None:
            return self.error(error)
        return self.end_choice(finish) + self.close(finish.usage)

    def end_choice(self, finish: router_pb2.Finish) -> bytes:
        """This choice's last chunks (a clean Finish): the calls the fragments did not send, the reason."""
        out = self.start() + self._tool_calls(finish)
        return out + self._head + self._final_choice(finish.finish_reason) + self._tail

    def close(self, usage: router_pb2.Usage) -> bytes:
        """The stream's end once every choice has ended: the usage chunk when asked for, ``[DONE]``."""
        out = b""
        if self.include_usage:
            out = self._head + b'[],"usage":' + orjson.dumps(openai_usage(usage).model_dump()) + b"}\n\n"
        self.done = True
        return out + sse.DONE

    def keep_alive(self) -> bytes:
        """An SSE comment: every SSE client skips it (the SDKs included), and a proxy that cuts idle
        connections sees bytes flowing."""
        return _KEEP_ALIVE

    def error(self, exc: TollgateError) -> bytes:
        """End the stream with an explicit error (no ``[DONE]``), e.g. when the router stream broke."""
        self.done = True
        return sse.json_data(exc.to_openai())


class OpenAIChatStream(_OpenAIStream):
    """``chat.completion.chunk`` events: role chunk, content chunks, final chunk, usage chunk, [DONE]."""

    _object = b"chat.completion.chunk"
    _prefix = "chatcmpl-"

    _delta_open = b'[{"index":{index},"delta":{"content":'
    _delta_close = b'},"logprobs":null,"finish_reason":null}]'

    def __init__(
        self, request_id: str, model: str, *, include_usage: bool, created: int | None = None, index: int = 0
    ) -> None:
        super().__init__(request_id, model, include_usage=include_usage, created=created, index=index)
        self._streamed: dict[int, str] = {}  # each call's arguments sent so far, by index

    def _opening(self) -> bytes:
        return (self._head + b'[{"index":' + self._index + b',"delta":{"role":"assistant","content":""},'
                b'"logprobs":null,"finish_reason":null}]' + self._tail)

    def tool_calls(self, fragments: Sequence[router_pb2.ToolCallDelta]) -> bytes:
        """One chunk per fragment, as OpenAI streams a call: the first with the id, the type, the name
        and its piece of the arguments, the later ones with their piece alone."""
        out = b"" if self.started else self.start()
        for fragment in fragments:
            entry: dict[str, Any] = {"index": fragment.index}
            function: dict[str, str] = {}
            if fragment.index not in self._streamed:
                entry |= {"id": fragment.id, "type": "function"}
                function["name"] = fragment.name
                self._streamed[fragment.index] = ""
            elif fragment.name:
                function["name"] = fragment.name
            function["arguments"] = fragment.arguments
            entry["function"] = function
            self._streamed[fragment.index] += fragment.arguments
            out += self._call_chunk(entry)
        return out

    def thinking(self, pieces: Sequence[router_pb2.ThinkingDelta]) -> bytes:
        """A reasoning model's reasoning, one chunk per piece: its text in the ``reasoning`` field of
        the delta (the name OpenAI gives it for models that show it, vLLM's and OpenRouter's), and the
        piece of its block in ``reasoning_details`` (a signature, a redacted block: services/edge/
        reasoning_details.py); the SDK keeps both as extra fields of the delta."""
        out = b"" if self.started else self.start()
        for piece in pieces:
            details = b'"reasoning_details":[' + orjson.dumps(piece_detail(piece)) + b"]"
            text = b'"reasoning":' + orjson.dumps(piece.thinking) + b"," if piece.thinking else b""
            out += self._head + b'[{"index":' + self._index + b',"delta":{' + text + details
            out += self._delta_tail
        return out

    def logprobs(self, content_json: str) -> bytes:
        """The log probabilities of the tokens just written, in a chunk of their own (an empty delta),
        as the router has them: the SDKs' stream helpers add each chunk's ``logprobs.content``."""
        return (self._head + b'[{"index":' + self._index + b',"delta":{},"logprobs":{"content":'
                + content_json.encode()
                + b',"refusal":null},"finish_reason":null}]' + self._tail)

    def _call_chunk(self, entry: dict[str, Any]) -> bytes:
        return (self._head + b'[{"index":' + self._index + b',"delta":{"tool_calls":[' + orjson.dumps(entry)
                + b']},"logprobs":null,"finish_reason":null}]' + self._tail)

    def delta(self, text: str) -> bytes:
        opening = b"" if self.started else self.start()
        if not text:
            return opening
        return opening + self._delta_head + orjson.dumps(text) + self._delta_tail

    def _final_choice(self, reason: str) -> bytes:
        return (b'[{"index":' + self._index + b',"delta":{},"logprobs":null,"finish_reason":"'
                + chat_finish_reason(reason).encode() + b'"}]')

    def _tool_calls(self, finish: router_pb2.Finish) -> bytes:
        """What the fragments did not send, before the final chunk: a call never streamed goes whole
        (id, name, all arguments) in one chunk; a streamed one gets the rest of its arguments, if any
        (a provider that interleaved its calls)."""
        out = b""
        for index, call in enumerate(tool_calls(finish)):
            sent = self._streamed.get(index)
            if sent is None:
                out += self._call_chunk({"index": index, **call.model_dump(mode="json")})
                continue
            if rest := unsent_arguments(sent, call.function.arguments):
                out += self._call_chunk({"index": index, "function": {"arguments": rest}})
        return out


class OpenAICompletionStream(_OpenAIStream):
    """``text_completion`` events (legacy completions): text chunks, final chunk, usage chunk, [DONE]."""

    _object = b"text_completion"
    _prefix = "cmpl-"

    _delta_open = b'[{"text":'
    _delta_close = b',"index":{index},"logprobs":null,"finish_reason":null}]'

    def delta(self, text: str) -> bytes:
        self.started = True  # completions have no opening chunk
        if not text:
            return b""
        return self._delta_head + orjson.dumps(text) + self._delta_tail

    def logprobs(self, content_json: str) -> bytes:
        """The log probabilities of the tokens just written, in the legacy format, in a chunk of their
        own (empty text): clients join each chunk's lists, as they join its text."""
        self.started = True
        legacy = orjson.dumps(legacy_logprobs(content_json))
        return (self._head + b'[{"text":"","index":' + self._index + b',"logprobs":' + legacy
                + b',"finish_reason":null}]' + self._tail)

    def _final_choice(self, reason: str) -> bytes:
        return (b'[{"text":"","index":' + self._index + b',"logprobs":null,"finish_reason":"'
                + completion_finish_reason(reason).encode() + b'"}]')
