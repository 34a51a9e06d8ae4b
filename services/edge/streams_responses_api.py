"""Responses API streaming encoder: router deltas and Finish in, ready-to-send named SSE events out.

The event sequence is OpenAI's: ``response.created`` and ``response.in_progress`` open the stream; an
answer's text is an output item of type ``message`` (``response.output_item.added``,
``response.content_part.added``, ``response.output_text.delta``…, then ``.done`` for the text, the
part and the item); each function call is an item of its own (``response.output_item.added``,
``response.function_call_arguments.delta``…, ``.done``); ``response.completed`` (or
``response.incomplete``, cut at the output limit) carries the whole Response with its usage. A
reasoning model's reasoning text (an OpenAI-compatible server's) is a ``reasoning`` item of its own
(``response.reasoning_text.delta``…), before the text it came before. Every
event has the next ``sequence_number``. A failure after the stream began ends it with one ``error``
event, which carries the error both flat (the spec's fields) and nested (what the SDK raises on), and
no ``response.completed`` (DESIGN promise 7).

Hot path, so each ``response.output_text.delta`` is a precomputed prefix (its item known when the item
opens), the sequence number, the orjson-encoded text and a constant suffix. The tests parse every
event with the official SDK's types and rebuild the final Response with the SDK's stream helper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from services.common.errors import TollgateError, UpstreamError
from services.edge import sse
from services.edge.convert_openai import tool_calls
from services.edge.convert_responses_api import (
    call_item_id,
    echoed,
    incomplete_reason,
    message_id,
    reasoning_item_id,
    response_usage,
    wants_blocks,
)
from services.edge.finish import finish_error, response_id, unsent_arguments
from services.edge.reasoning_details import encoded_block
from services.edge.wire import responses_api as w
from tollgate.router.v1 import router_pb2

_DELTA_EVENT = b"event: response.output_text.delta\ndata: "
_DELTA_TAIL = b',"logprobs":[]}\n\n'


class ResponsesStream:
    def __init__(self, request_id: str, model: str, req: w.ResponsesRequest, *, created: int) -> None:
        self.request_id = request_id
        self.model = model
        self.started = False
        self.done = False
        self._echo = echoed(req)
        self._with_blocks = wants_blocks(req)
        self._created = created
        self._seq = 0
        self._output: list[dict[str, Any]] = []  # finished items, in order
        self._message = ""  # the open message item's id ("": no message open)
        self._text: list[str] = []  # ... and its text so far
        self._logprobs: list[Any] = []  # ... and its tokens' log probabilities so far (when asked)
        self._delta_head = b""  # the open message's delta event up to its sequence number
        self._delta_mid = b""  # ... and from after it up to the text
        self._call: int | None = None  # the call index whose item is open
        self._calls: dict[int, dict[str, Any]] = {}  # call index -> its item (arguments sent so far)
        self._messages = 0
        self._reasoning = ""  # the open reasoning item's id ("": none open)
        self._reasoning_block = -1  # ... the thinking block it shows
        self._reasoning_text: list[str] = []
        self._reasoning_seal = ("", "")  # ... its signature, or its redacted data

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return sse.json_event(kind, payload)

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        """The Response as it stands (one model for the streamed and the whole answer)."""
        return w.Response.model_validate({
            "id": response_id("resp_", self.request_id), "created_at": self._created, "status": status,
            "model": self.model, "output": self._output, **self._echo, **fields,
        }).model_dump()

    def start(self) -> bytes:
        """The opening events, once; every other method calls it when needed."""
        if self.started:
            return b""
        self.started = True
        response = self._response("in_progress")
        return (self._event("response.created", {"response": response})
                + self._event("response.in_progress", {"response": response}))

    def delta(self, text: str) -> bytes:
        out = b"" if self.started else self.start()
        if not text:
            return out
        if not self._message:
            out += self._open_message()
        self._text.append(text)
        seq = self._seq
        self._seq += 1
        return (out + _DELTA_EVENT + self._delta_head + str(seq).encode() + self._delta_mid
                + orjson.dumps(text) + _DELTA_TAIL)

    def _open_message(self) -> bytes:
        out = self._close_open()
        item_id = message_id(self.request_id, self._messages)
        self._messages += 1
        index = len(self._output)
        self._message, self._text, self._logprobs = item_id, [], []
        self._delta_head = b'{"type":"response.output_text.delta","sequence_number":'
        self._delta_mid = (b',"item_id":' + orjson.dumps(item_id) + b',"output_index":' + str(index).encode()
                           + b',"content_index":0,"delta":')
        item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        added = self._event("response.output_item.added", {"output_index": index, "item": item})
        return out + added + self._event("response.content_part.added", {
            "item_id": item_id, "output_index": index, "content_index": 0, "part": _text_part("")})

    def _close_message(self, status: str) -> bytes:
        text, item_id, logprobs = "".join(self._text), self._message, self._logprobs
        self._message, self._text, self._logprobs = "", [], []
        index = len(self._output)
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        part = _text_part(text, logprobs)
        item = {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": [part]}
        self._output.append(item)
        return (self._event("response.output_text.done", {**where, "text": text, "logprobs": logprobs})
                + self._event("response.content_part.done", {**where, "part": part})
                + self._event("response.output_item.done", {"output_index": index, "item": item}))

    def _close_call(self) -> bytes:
        assert self._call is not None
        item = {**self._calls[self._call], "status": "completed"}
        self._call = None
        index = len(self._output)
        self._output.append(item)
        done = {"item_id": item["id"], "output_index": index, "name": item["name"],
                "arguments": item["arguments"]}
        return (self._event("response.function_call_arguments.done", done)
                + self._event("response.output_item.done", {"output_index": index, "item": item}))

    def _close_open(self, status: str = "completed") -> bytes:
        if self._reasoning:
            return self._close_reasoning(status)
        if self._message:
            return self._close_message(status)
        if self._call is not None:
            return self._close_call()
        return b""

    def tool_calls(self, fragments: Sequence[router_pb2.ToolCallDelta]) -> bytes:
        """A call opens an item of its own (closing the one before) and its argument pieces follow as
        ``response.function_call_arguments.delta`` events. A piece of a call whose item is closed
        cannot be sent: the router sends none, and ``finish`` refuses the answer if the rest cannot
        follow."""
        out = b"" if self.started else self.start()
        for fragment in fragments:
            if fragment.index not in self._calls:
                out += self._close_open()
                out += self._open_call(fragment.index, fragment.id, fragment.name)
            if fragment.arguments and fragment.index == self._call:
                out += self._arguments(fragment.arguments)
        return out

    def _open_call(self, index: int, call_id: str, name: str) -> bytes:
        item = {"id": call_item_id(self.request_id, index), "type": "function_call", "status": "in_progress",
                "call_id": call_id, "name": name, "arguments": ""}
        self._calls[index] = item
        self._call = index
        return self._event("response.output_item.added", {"output_index": len(self._output), "item": item})

    def _arguments(self, piece: str) -> bytes:
        assert self._call is not None
        item = self._calls[self._call]
        item["arguments"] += piece
        return self._event("response.function_call_arguments.delta", {
            "item_id": item["id"], "output_index": len(self._output), "delta": piece})

    def logprobs(self, content_json: str) -> bytes:
        """The log probabilities of the text just written (asked for by ``include``): kept for the
        message's closing events and the final Response, and sent now in a ``response.output_text.delta``
        of their own with an empty ``delta``, the one event that carries them while the text streams."""
        out = b"" if self.started else self.start()
        if not self._message:
            out += self._open_message()
        self._logprobs += orjson.loads(content_json)
        seq = self._seq
        self._seq += 1
        head = _DELTA_EVENT + self._delta_head + str(seq).encode() + self._delta_mid
        return out + head + b'"","logprobs":' + content_json.encode() + b"}\n\n"

    def thinking(self, pieces: Sequence[router_pb2.ThinkingDelta]) -> bytes:
        """A model's reasoning: a ``reasoning`` item per thinking block, its text as
        ``response.reasoning_text.delta`` events, as OpenAI streams a model's reasoning text. A block's
        signature, or a redacted block, shows only in the item's ``encrypted_content`` (asked for)."""
        out = b"" if self.started else self.start()
        for piece in pieces:
            if not self._reasoning or piece.index != self._reasoning_block:
                out += self._close_open() + self._open_reasoning(piece.index)
            if piece.signature or piece.redacted:
                self._reasoning_seal = (piece.signature, piece.redacted)
            if piece.thinking:
                self._reasoning_text.append(piece.thinking)
                out += self._event("response.reasoning_text.delta", {
                    "item_id": self._reasoning, "output_index": len(self._output), "content_index": 0,
                    "delta": piece.thinking})
        return out

    def _open_reasoning(self, block: int) -> bytes:
        self._reasoning = reasoning_item_id(self.request_id, block)
        self._reasoning_block, self._reasoning_text, self._reasoning_seal = block, [], ("", "")
        index = len(self._output)
        item = {"id": self._reasoning, "type": "reasoning", "status": "in_progress", "summary": [],
                "content": []}
        added = self._event("response.output_item.added", {"output_index": index, "item": item})
        return added + self._event("response.content_part.added", {
            "item_id": self._reasoning, "output_index": index, "content_index": 0,
            "part": {"type": "reasoning_text", "text": ""}})

    def _close_reasoning(self, status: str) -> bytes:
        text, item_id = "".join(self._reasoning_text), self._reasoning
        self._reasoning, self._reasoning_text = "", []
        index = len(self._output)
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        part = {"type": "reasoning_text", "text": text}
        item = {"id": item_id, "type": "reasoning", "status": status, "summary": [], "content": [part]}
        if self._with_blocks and (encrypted := encoded_block(text, *self._reasoning_seal)) is not None:
            item["encrypted_content"] = encrypted
        self._output.append(item)
        return (self._event("response.reasoning_text.done", {**where, "text": text})
                + self._event("response.content_part.done", {**where, "part": part})
                + self._event("response.output_item.done", {"output_index": index, "item": item}))

    def keep_alive(self) -> bytes:
        """An SSE comment, which every SSE client skips; before anything else, the opening events (OpenAI
        sends ``response.created`` at once and its stream is then under way)."""
        return b": keep-alive\n\n" if self.started else self.start()

    def finish(self, finish: router_pb2.Finish) -> bytes:
        """The end of the stream: ``response.completed`` (or ``.incomplete``) with the whole Response, or
        an ``error`` event for a failed Finish. Raises when the calls streamed so far cannot be completed
        (the caller ends the stream with ``error``)."""
        if (error := finish_error(finish)) is not None:
            return self.error(error)
        incomplete = incomplete_reason(finish.finish_reason)
        status = "incomplete" if incomplete else "completed"
        calls = tool_calls(finish)
        out = self.start()
        for index, item in self._calls.items():
            whole = calls[index].function.arguments if index < len(calls) else None
            rest = None if whole is None else unsent_arguments(item["arguments"], whole)
            if rest is None or (rest and index != self._call):
                raise UpstreamError("the model's tool calls arrived out of order, which the Responses API "
                                    "cannot stream", code="upstream_bad_response")
            if rest:
                out += self._arguments(rest)
        out += self._close_open(status)
        for index, call in enumerate(calls):
            if index not in self._calls:  # calls the fragments never opened: whole, after the rest
                out += self._open_call(index, call.id, call.function.name)
                out += self._arguments(call.function.arguments) + self._close_call()
        usage = response_usage(finish.usage).model_dump()
        details = incomplete.model_dump() if incomplete else None
        response = self._response(status, usage=usage, incomplete_details=details)
        self.done = True
        return out + self._event(f"response.{status}", {"response": response})

    def error(self, exc: TollgateError) -> bytes:
        """End the stream with an ``error`` event (no ``response.completed``)."""
        self.done = True
        body = exc.to_openai()["error"]
        return self._event("error", {"code": body.get("code") or body.get("type"), "message": body["message"],
                                     "param": body.get("param"), "error": body})


def _text_part(text: str, logprobs: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}
