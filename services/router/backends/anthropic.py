"""Anthropic's Messages API (and servers that speak it), always streaming.

``base_url`` is what Anthropic's SDK takes as ``base_url``: the host without the version
(``https://api.anthropic.com``); we append ``/v1/messages``. The rule is the same as for
``OpenAICompatBackend``: paste the URL the provider's own SDK documents, and it works.

Decisions worth knowing:

- System turns, wherever they appear, become the top-level ``system`` (Anthropic has no system role);
  consecutive turns of one role are merged into one message of several text blocks, because the API
  requires user and assistant to alternate while OpenAI-shaped input does not.
- Tool turns are refused (InvalidRequest) for now: a ``tool_result`` must reference a ``tool_use``
  block of the previous assistant turn, which ``ChatTurn`` cannot carry yet.
- Raw completions (``prompt``) are refused: Anthropic retired its text-completion API, and wrapping a
  prompt as a chat turn would silently change what the client asked for.
- ``seed`` is not sent: Anthropic has no such parameter.
- Anthropic's ``input_tokens`` already excludes cache reads and writes, so it maps straight through.
- Only text deltas are yielded; thinking and tool-input deltas are not carried by the router proto.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from services.common.errors import InvalidRequest, TollgateError
from services.router.backends import ChatTurn, GenerationRequest, Outcome, as_count
from services.router.backends import provider_errors as pe
from services.router.backends.http import ProviderHTTP, get_status, sse_batches, step_timeout
from services.router.backends.sse import Event

READY_TIMEOUT = 2.0

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "refusal": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}
_RESERVED = frozenset({"model", "messages", "stream", "max_tokens"})


def to_messages(turns: Sequence[ChatTurn]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system, messages) in Anthropic's shape; see the module notes for why."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for turn in turns:
        if turn.role == "system":
            system.append(turn.content)
            continue
        if turn.role == "tool":
            raise InvalidRequest("tool result messages are not supported for this model yet",
                                 param="messages")
        if turn.role not in ("user", "assistant"):
            raise InvalidRequest(f"unsupported message role {turn.role!r}", param="messages")
        block = {"type": "text", "text": turn.content}
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"].append(block)
        else:
            messages.append({"role": turn.role, "content": [block]})
    if not messages:
        raise InvalidRequest("at least one user or assistant message is required", param="messages")
    for message in messages:
        blocks = message["content"]
        if len(blocks) == 1:
            message["content"] = blocks[0]["text"]  # the plain-string form, as clients usually send it
    return ("\n\n".join(system) if system else None), messages


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
        timeout: float = 60.0,
        version: str = "2023-06-01",
    ) -> None:
        """``timeout`` bounds each network step, not the whole generation (as for OpenAI);
        ``client`` is the caller's and stays open on ``close``."""
        self._base = base_url.rstrip("/")
        self._api_key_env = api_key_env
        self._client = client
        self._timeout = step_timeout(timeout)
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
            raise InvalidRequest("this model only supports chat requests, not raw completions",
                                 param="prompt")
        system, messages = to_messages(request.messages)
        body: dict[str, Any] = {k: v for k, v in request.provider_options.items() if k not in _RESERVED}
        body.update(model=request.upstream_model, messages=messages, stream=True)
        sampling = request.sampling
        body["max_tokens"] = sampling.max_tokens
        if system is not None:
            body["system"] = system
        if sampling.temperature is not None:
            body["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        if sampling.top_k is not None:
            body["top_k"] = sampling.top_k
        if sampling.stop:
            body["stop_sequences"] = list(sampling.stop)
        return body

    async def ready(self) -> bool:
        """Reachable with credentials that are not refused. ``GET /v1/models`` costs nothing; a
        compatible server without that route (404) is still reachable, so only auth failures, 5xx and
        network errors count as not ready."""
        try:
            status = await get_status(
                self._client, self._base + "/v1/models", self._headers(self._api_key()), READY_TIMEOUT
            )
        except (aiohttp.ClientError, TimeoutError, TollgateError):
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
        batches = sse_batches(
            self._client, self._base + "/v1/messages", orjson.dumps(body), headers, self._timeout, secrets
        )
        # closed explicitly, so an early close reaches every generator down to the socket
        async with aclosing(self._read(batches, outcome, secrets)) as texts:
            async for pieces in texts:
                yield pieces

    async def _read(
        self, batches: AsyncGenerator[list[Event], None], outcome: Outcome, secrets: tuple[str, ...]
    ) -> AsyncGenerator[list[str], None]:
        started = finished = False
        stop_reason: str | None = None
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
                    elif kind == "content_block_start":
                        block = doc.get("content_block") or {}
                        if block.get("type") == "text" and block.get("text"):
                            pieces.append(str(block["text"]))
                    elif kind == "message_start":
                        message = doc.get("message") or {}
                        usage = message.get("usage")
                        if isinstance(usage, dict):
                            apply_usage(usage, outcome)
                            started = True
                    elif kind == "message_delta":
                        stop_reason = (doc.get("delta") or {}).get("stop_reason") or stop_reason
                        usage = doc.get("usage")
                        if isinstance(usage, dict):
                            apply_usage(usage, outcome)
                            outcome.usage_reported = started and "output_tokens" in usage
                    elif kind == "message_stop":
                        finished = True
                    elif kind == "error":
                        failure = pe.error_from_stream_event(doc, secrets)
                        break
                    # ping, content_block_stop and event types added later carry nothing we need
                if pieces:
                    yield pieces
                if failure is not None:
                    raise failure
        if not finished:
            raise pe.incomplete_stream()
        outcome.finish_reason = _FINISH.get(stop_reason or "end_turn", "stop")

    async def close(self) -> None:
        """Nothing to release: the HTTP client belongs to whoever built the backends."""
