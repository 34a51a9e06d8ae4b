"""Anthropic's Messages API (and servers that speak it), always streaming.

``base_url`` is what Anthropic's SDK takes as ``base_url``: the host without the version
(``https://api.anthropic.com``); we append ``/v1/messages``. The rule is the same as for
``OpenAICompatBackend``: paste the URL the provider's own SDK documents, and it works.

Decisions worth knowing:

- System turns, wherever they appear, become the top-level ``system`` (Anthropic has no system role);
  consecutive turns of one role are merged into one message of several text blocks, because the API
  requires user and assistant to alternate while OpenAI-shaped input does not.
- Tools are translated from the router's (OpenAI) vocabulary (``tool_use.py``): function tools
  become ``input_schema`` tools, an earlier assistant turn's calls become its ``tool_use`` blocks, and
  a ``tool`` turn becomes a user turn's ``tool_result`` block. ``response_format`` with a JSON
  schema becomes structured outputs (``anthropic_output.py``). Other OpenAI-only options
  (``json_object``, penalties, ``logit_bias``, ...) have no Anthropic equivalent and are refused
  with a 400 naming them, before anything is sent.
- Raw completions (``prompt``) are refused: Anthropic retired its text-completion API, and wrapping a
  prompt as a chat turn would silently change what the client asked for.
- ``seed`` is not sent: Anthropic has no such parameter.
- Anthropic's ``input_tokens`` already excludes cache reads and writes, so it maps straight through.
- Prompt caching: the client's ``cache_control`` breakpoints come as offsets into each turn's
  flattened text (``CacheBreakpoint``); the text is split back into blocks there and the block each
  breakpoint ends is marked, so the provider caches the same prefix the client asked for. A system
  prompt with breakpoints is sent as blocks; tools keep their own ``cache_control``.
- Text deltas are yielded as they come; a ``tool_use`` block's id, name and ``input_json_delta``
  fragments are passed on as they come too, and the call reaches the ``Outcome`` whole at the end (a
  call without input as ``{}``).
- Extended thinking: the client's ``thinking`` goes out as it asked; an OpenAI client's
  ``reasoning_effort`` becomes a thinking budget (``anthropic_effort.py``). The answer's thinking blocks are
  passed on as they come (``thinking.ThinkingAssembler``), in their own deltas ahead of any text or
  call that came after them, and an earlier turn's blocks go back where the model wrote them, unchanged
  (Anthropic checks their signatures and their order).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

import orjson

from services.common.errors import TollgateError, UnsupportedByBackend
from services.router.backends import (
    EMBEDDINGS_UNSUPPORTED,
    EmbeddingRequest,
    Embeddings,
    GenerationRequest,
    Outcome,
    as_count,
)
from services.router.backends import provider_errors as pe
from services.router.backends.anthropic_effort import EFFORT, thinking_for_effort
from services.router.backends.anthropic_messages import to_messages
from services.router.backends.anthropic_output import RESPONSE_FORMAT, output_config
from services.router.backends.http import (
    DEFAULT_TIMEOUTS,
    ProviderHTTP,
    ReadTimeouts,
    ReadWatch,
    get_status,
    post_for_count,
    sse_batches,
)
from services.router.backends.http_client import TransportError
from services.router.backends.sse import Event
from services.router.backends.thinking import ThinkingAssembler
from services.router.backends.tool_call_fragments import ToolCallAssembler
from services.router.backends.tool_use import TOOL_OPTIONS, anthropic_tools, assistant_tool_calls

READY_TIMEOUT = 2.0
# what Anthropic's count_tokens takes of a Messages request (the rest is about generating)
COUNTED_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}
)

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop_sequence",
    "pause_turn": "stop",
    "refusal": "content_filter",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}


def apply_usage(usage: dict[str, Any], outcome: Outcome) -> None:
    """``message_start`` carries input and cache counts, ``message_delta`` the cumulative output
    (and, on newer API versions, the input counts again); whatever is present is the latest truth."""
    if "input_tokens" in usage:
        outcome.input_tokens = as_count(usage.get("input_tokens"))
    if "cache_read_input_tokens" in usage:
        outcome.cached_input_tokens = as_count(usage.get("cache_read_input_tokens"))
    if "cache_creation_input_tokens" in usage:
        outcome.cache_write_tokens = as_count(usage.get("cache_creation_input_tokens"))
    if "output_tokens" in usage:
        outcome.output_tokens = as_count(usage.get("output_tokens"))


class AnthropicBackend:
    def __init__(
        self,
        base_url: str,
        api_key_env: str | None,
        client: ProviderHTTP,
        timeouts: ReadTimeouts = DEFAULT_TIMEOUTS,
        version: str = "2023-06-01",
    ) -> None:
        """``timeouts`` bound the provider's silences, not the whole generation (as for OpenAI);
        ``client`` is the caller's and stays open on ``close``."""
        self._base = base_url.rstrip("/")
        self._api_key_env = api_key_env
        self._client = client
        self._timeouts = timeouts
        self._version = version

    def _api_key(self) -> str | None:
        """Read at call time from the one variable the deployment names (the only credential read
        here); configured but absent is an operator error, raised before any request is sent."""
        if self._api_key_env is None:
            return None
        key = os.environ.get(self._api_key_env, "")
        if not key:
            raise pe.missing_credentials()
        return key

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self._version, "accept": "text/event-stream"}
        if key:
            headers["x-api-key"] = key
        return headers

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        if request.messages is None:
            raise UnsupportedByBackend("this model only supports chat requests, not raw completions",
                                       param="prompt")
        options = request.provider_options
        unsupported = sorted(set(options) - TOOL_OPTIONS - {EFFORT, RESPONSE_FORMAT})
        if unsupported:
            raise UnsupportedByBackend(
                f"'{unsupported[0]}' is not supported by this model", param=unsupported[0]
            )
        system, messages = to_messages(request.messages, assistant_tool_calls(options))
        body: dict[str, Any] = anthropic_tools(options)
        body.update(model=request.upstream_model, messages=messages, stream=True)
        sampling = request.sampling
        body["max_tokens"] = sampling.max_tokens
        if system is not None:
            body["system"] = system
        if sampling.temperature is not None:
            if sampling.temperature > 1:  # OpenAI's range is 0-2, Anthropic's 0-1: not ours to rescale
                raise UnsupportedByBackend(
                    "temperature above 1 is not supported by this model (its range is 0 to 1)",
                    param="temperature",
                )
            body["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        if sampling.top_k is not None:
            body["top_k"] = sampling.top_k
        if sampling.stop:
            body["stop_sequences"] = list(sampling.stop)
        if request.end_user:
            body["metadata"] = {"user_id": request.end_user}
        if (thinking := request.thinking) is not None:
            body["thinking"] = {"type": thinking.type}
            if thinking.budget_tokens:
                body["thinking"]["budget_tokens"] = thinking.budget_tokens
            if thinking.display:
                body["thinking"]["display"] = thinking.display
        elif (effort := thinking_for_effort(request)) is not None:
            body["thinking"] = effort
        if (config := output_config(options)) is not None:
            body["output_config"] = config
        return body

    async def count_tokens(self, request: GenerationRequest) -> int:
        """Anthropic's ``POST /v1/messages/count_tokens``: the request's model, messages, system
        prompt and tools (what that endpoint takes), with the same conversion and checks as a
        generation. Free at Anthropic, and rate-limited there on its own."""
        body = {k: v for k, v in self._body(request).items() if k in COUNTED_FIELDS}
        key = self._api_key()
        headers = {**self._headers(key), "content-type": "application/json"}
        return await post_for_count(
            self._client, self._base + "/v1/messages/count_tokens", body, headers,
            self._timeouts.after_output, (key,) if key else (), "input_tokens",
        )

    async def ready(self) -> bool:
        """Reachable with credentials that are not refused. ``GET /v1/models`` costs nothing; a
        compatible server without that route (404) is still reachable, so only auth failures, 5xx and
        network errors count as not ready."""
        try:
            status = await get_status(
                self._client, self._base + "/v1/models", self._headers(self._api_key()), READY_TIMEOUT
            )
        except (TransportError, TimeoutError, TollgateError):
            return False
        return status < 500 and status not in (401, 403)

    async def generate(
        self, request: GenerationRequest, outcome: Outcome
    ) -> AsyncGenerator[list[str], None]:
        """Yield the text pieces of each network read and fill ``outcome``; closing early drops the
        connection (see ``OpenAICompatBackend.generate``)."""
        body = self._body(request)
        key = self._api_key()
        secrets = (key,) if key else ()
        headers = {**self._headers(key), "content-type": "application/json"}
        watch = ReadWatch(self._timeouts)
        url = self._base + "/v1/messages"
        batches = sse_batches(self._client, url, orjson.dumps(body), headers, watch, secrets)
        # closed explicitly, so an early close reaches every generator down to the socket
        async with aclosing(self._read(batches, outcome, secrets)) as texts:
            async for pieces in texts:
                watch.answering()  # text or a tool call's piece: the shorter silence applies from here
                yield pieces

    async def _read(
        self, batches: AsyncGenerator[list[Event], None], outcome: Outcome, secrets: tuple[str, ...]
    ) -> AsyncGenerator[list[str], None]:
        started = finished = False
        stop_reason: str | None = None
        calls = ToolCallAssembler(outcome)  # tool_use blocks by content index, input as JSON text
        thinking = ThinkingAssembler(outcome)
        written = 0  # the answer's text so far, in code points: where a thinking block comes in it
        async with aclosing(batches):
            async for events in batches:
                if finished:
                    continue  # read to the end of the body so the connection goes back to the pool
                pieces: list[str] = []
                failure: TollgateError | None = None  # raised after the text that came before it
                for event in events:
                    if finished:
                        break
                    doc = pe.parse_event(event.data)
                    kind = doc.get("type") or event.event
                    if kind == "content_block_delta":
                        delta = doc.get("delta") or {}
                        if delta.get("type") == "text_delta" and delta.get("text"):
                            pieces.append(str(delta["text"]))
                            written += len(pieces[-1])
                        elif delta.get("type") in ("thinking_delta", "signature_delta"):
                            if pieces or outcome.tool_deltas:
                                yield pieces  # what came before the thinking goes first, on its own
                                pieces = []
                            _thinking_delta(thinking, as_count(doc.get("index")), delta)
                        elif delta.get("type") == "input_json_delta":
                            index, piece = as_count(doc.get("index")), delta.get("partial_json")
                            if calls.arguments_of(index) is not None and isinstance(piece, str):
                                calls.fragment(index, arguments=piece)
                    elif kind == "content_block_start":
                        block = doc.get("content_block") or {}
                        if block.get("type") == "text" and block.get("text"):
                            pieces.append(str(block["text"]))
                            written += len(pieces[-1])
                        elif block.get("type") in ("thinking", "redacted_thinking"):
                            if pieces or outcome.tool_deltas:
                                yield pieces  # as above
                                pieces = []
                            thinking.start(as_count(doc.get("index")), offset=written,
                                           after_calls=calls.count(), **_thinking_start(block))
                        elif block.get("type") == "tool_use":
                            calls.fragment(as_count(doc.get("index")), **_tool_use_start(block))
                    elif kind == "content_block_stop":
                        index = as_count(doc.get("index"))
                        if calls.arguments_of(index) == "":  # a tool_use block without input: {}, as whole
                            calls.fragment(index, arguments="{}")
                    elif kind == "message_start":
                        message = doc.get("message") or {}
                        usage = message.get("usage")
                        if isinstance(usage, dict):
                            apply_usage(usage, outcome)
                            started = True
                    elif kind == "message_delta":
                        delta = doc.get("delta") or {}
                        stop_reason = delta.get("stop_reason") or stop_reason
                        if isinstance(delta.get("stop_sequence"), str):
                            outcome.stop_sequence = delta["stop_sequence"]
                        usage = doc.get("usage")
                        if isinstance(usage, dict):
                            apply_usage(usage, outcome)
                            outcome.usage_reported = started and "output_tokens" in usage
                    elif kind == "message_stop":
                        finished = True
                    elif kind == "error":
                        failure = pe.error_from_stream_event(doc, secrets)
                        break
                    # ping and event types added later carry nothing we need
                if pieces or outcome.tool_deltas or outcome.thinking_deltas:
                    yield pieces
                if failure is not None:
                    raise failure
        if not finished:
            raise pe.incomplete_stream()
        outcome.finish_reason = _FINISH.get(stop_reason or "end_turn", "stop")
        outcome.tool_calls = [replace(c, arguments=c.arguments or "{}") for c in calls.calls()]
        outcome.thinking = thinking.blocks()

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """Anthropic has no embeddings API (it points to Voyage AI's): the model's next deployment may."""
        raise UnsupportedByBackend(EMBEDDINGS_UNSUPPORTED, param="model")

    async def close(self) -> None:
        """Nothing to release: the HTTP client belongs to whoever built the backends."""


def _tool_use_start(block: dict[str, Any]) -> dict[str, str]:
    """A ``tool_use`` block as it opens: its input streams after it as ``input_json_delta`` fragments
    (Anthropic opens with ``input: {}``); a server that sends the whole input here is taken at its word."""
    given = block.get("input")
    return {"call_id": str(block.get("id") or ""), "name": str(block.get("name") or ""),
            "arguments": orjson.dumps(given).decode() if isinstance(given, dict) and given else ""}


def _thinking_start(block: dict[str, Any]) -> dict[str, str]:
    """A thinking block as it opens (Anthropic opens it empty), or a redacted block, whole."""
    if block.get("type") == "redacted_thinking":
        return {"redacted": str(block.get("data") or "")}
    return {"thinking": str(block.get("thinking") or ""), "signature": str(block.get("signature") or "")}


def _thinking_delta(thinking: ThinkingAssembler, index: int, delta: dict[str, Any]) -> None:
    if not thinking.knows(index):
        return  # a delta for a block that never opened: nothing to attach it to
    if delta.get("type") == "thinking_delta" and isinstance(delta.get("thinking"), str):
        thinking.text(index, delta["thinking"])
    elif delta.get("type") == "signature_delta" and isinstance(delta.get("signature"), str):
        thinking.signature(index, delta["signature"])
