"""Any OpenAI-compatible provider (OpenAI, vLLM, SGLang, Together, Groq, ...), always streaming.

``base_url`` is what the provider's docs give as the OpenAI SDK's ``base_url``, version prefix
included (``https://api.openai.com/v1``, ``https://api.groq.com/openai/v1``), because compatible
servers mount the API under different prefixes; we append ``/chat/completions``, ``/completions``,
``/embeddings`` and ``/models``.

Decisions worth knowing:

- We always stream with ``stream_options.include_usage``: usage must come from the provider (billing
  never counts string lengths), and only the final usage-only chunk carries it. A provider that
  ignores the option ends without usage; we then leave ``usage_reported`` False and the router
  decides how to bill (it must not be silently zero).
- The token limit goes out as ``max_tokens``: every compatible server accepts it, while
  ``max_completion_tokens`` is newer and missing from many. OpenAI's own API is the exception: its
  reasoning models (o-series, gpt-5) refuse ``max_tokens``, and every one of its chat models takes
  ``max_completion_tokens``, so a deployment at api.openai.com sends that (``is_openai_api``).
- ``prompt_cache_key`` (the edge's per-account hash of the client's key) goes to OpenAI's own API
  only, which routes its prompt cache by it; compatible servers may refuse a field they do not know,
  and their cache needs no key (the router's affinity already sends one key to one server).
- What a server takes beyond that common subset is the deployment's ``features`` in the catalog
  (``backend_pool.openai_features``): ``top_k``, ``max_completion_tokens``, ``prompt_cache_key``,
  and ``continuous_usage``, vLLM's ``stream_options.continuous_usage_stats``: usage on every chunk, so
  the prompt's tokens are known from the first one and a stream the client cuts is billed for them
  (with usage only in the final chunk, a cut stream never learns its input tokens).
- ``top_k`` is not part of OpenAI's API and OpenAI rejects it, so a request with it is refused
  (``UnsupportedByBackend``, before anything is sent: fallback tries the model's next deployment)
  unless the backend says the server takes it (``send_top_k=True``: vLLM, SGLang, llama.cpp,
  Together). Never dropped in silence: a client that sets it is asking for different sampling.
- Tool-call deltas are passed on as fragments while they arrive and reach the ``Outcome`` whole (id,
  name, the arguments' JSON text) when the stream ends, with ``finish_reason = "tool_calls"``
  (``ToolCallAssembler``). A server that leaves out a call's id (some compatible servers do) gets one
  made up, since the client must send it back with the call's result.
- Images by URL go only to a server with the ``image_urls`` feature (OpenAI's own API has it by
  default); others get inline images only and refuse a URL (``UnsupportedByBackend``: fallback moves
  on). A self-hosted server (vLLM) fetches a URL from inside the operator's network, so sending it any
  URL a client names would let clients reach whatever that network can.
- A reasoning model's reasoning text, which compatible servers stream beside the content (vLLM's
  reasoning parsers and OpenRouter as ``reasoning``, DeepSeek and older vLLM as ``reasoning_content``;
  OpenAI's own API sends none), is passed on as thinking pieces to a caller that shows it
  (``accepts_reasoning``: Chat Completions clients; a Messages client that asked for ``thinking``),
  one unsigned thinking block per run of reasoning, in a batch of its own when text or a call came
  before it in the same read. Otherwise it is dropped. It is output the provider counts in
  ``completion_tokens`` either way. A request's ``thinking`` is not refused but not sent either: these
  servers have no thinking budget, and a reasoning model reasons as its server is set up to
  (``max_tokens`` still bounds the whole answer).
- Log probabilities (``logprobs`` / ``top_logprobs``, provider options) go to the server as asked, and
  each chunk's ``logprobs.content`` comes back with its text (``logprobs.content_entries``; a legacy
  completion's four lists, ``completion_entries``), only when the client asked: a recorded or
  misbehaving server that sends them unasked sends them to no one. A completion's ``echo`` goes on as
  asked too (the server writes the prompt in front of the answer), and a prompt of token ids goes as
  the array it is.
- ``content_filter`` maps to ``stop``: the ``Outcome`` vocabulary has no filter reason, and the
  provider ends such an answer cleanly.
- Upstream response headers are never read back into anything we return: only text and usage leave.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any
from urllib.parse import urlsplit

import orjson

from services.common.errors import InvalidRequest, TollgateError, UnsupportedByBackend
from services.router.backends import (
    COUNT_UNSUPPORTED,
    EmbeddingRequest,
    Embeddings,
    GenerationRequest,
    Outcome,
    as_count,
)
from services.router.backends import provider_errors as pe
from services.router.backends.embeddings import ANSWER_LIMIT_BYTES, read_answer
from services.router.backends.http import (
    DEFAULT_TIMEOUTS,
    ProviderHTTP,
    ReadTimeouts,
    ReadWatch,
    get_status,
    post_for_count,
    post_json,
    sse_batches,
)
from services.router.backends.http_client import TransportError
from services.router.backends.logprobs import completion_entries, content_entries
from services.router.backends.openai_counting import count_request
from services.router.backends.openai_deltas import ReasoningRuns, add_tool_call_fragments
from services.router.backends.openai_messages import openai_turn
from services.router.backends.sse import Event
from services.router.backends.tool_call_fragments import ToolCallAssembler
from services.router.backends.tool_use import (
    ASSISTANT_TOOL_CALLS,
    assistant_tool_calls,
    without_cache_control,
)

READY_TIMEOUT = 2.0

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# Fields we own; provider_options may not override them (assistant_tool_calls goes back on its turns).
_RESERVED = frozenset({"model", "messages", "prompt", "stream", ASSISTANT_TOOL_CALLS})


def apply_usage(usage: dict[str, Any], outcome: Outcome) -> None:
    """OpenAI counts cached tokens inside ``prompt_tokens`` and reasoning inside ``completion_tokens``;
    ``Outcome`` wants input without the cached part, and reasoning as a part of output."""
    prompt = as_count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = as_count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    completion_details = usage.get("completion_tokens_details")
    outcome.input_tokens = max(prompt - cached, 0)
    outcome.cached_input_tokens = cached
    outcome.cache_write_tokens = 0
    outcome.output_tokens = as_count(usage.get("completion_tokens"))
    outcome.reasoning_tokens = (
        as_count(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else 0
    )
    outcome.usage_reported = True


OPENAI_API_HOST = "api.openai.com"


def is_openai_api(base_url: str) -> bool:
    """OpenAI's own API, whose dialect differs from what compatible servers take (see above)."""
    return urlsplit(base_url).hostname == OPENAI_API_HOST


class OpenAICompatBackend:
    def __init__(
        self,
        base_url: str,
        api_key_env: str | None,
        client: ProviderHTTP,
        timeouts: ReadTimeouts = DEFAULT_TIMEOUTS,
        *,
        max_tokens_field: str = "max_tokens",
        send_top_k: bool = False,
        send_prompt_cache_key: bool = False,
        continuous_usage: bool = False,
        tokenize: bool = False,
        input_tokens: bool = False,
        image_urls: bool = False,
    ) -> None:
        """``timeouts`` bound the provider's silences (before the first output, and between reads
        after it), not the whole generation: a long answer is fine as long as it keeps flowing.

        ``client`` is shared and owned by the caller (connection pool reuse across backends);
        ``close`` does not close it.
        """
        self._base = base_url.rstrip("/")
        self._api_key_env = api_key_env
        self._client = client
        self._timeouts = timeouts
        self._max_tokens_field = max_tokens_field
        self._send_top_k = send_top_k
        self._send_prompt_cache_key = send_prompt_cache_key
        self._usage = {"include_usage": True} | ({"continuous_usage_stats": True} if continuous_usage else {})
        self._tokenize = tokenize
        self._input_tokens = input_tokens
        self._image_urls = image_urls

    def _api_key(self) -> str | None:
        """Read at call time so a rotated secret applies without a restart. This is the one place
        the router reads a provider credential, and only from the variable the deployment names."""
        if self._api_key_env is None:
            return None  # a keyless server (a local vLLM) is a legitimate deployment
        key = os.environ.get(self._api_key_env, "")
        if not key:
            # Configured for a key that is not there: an operator error, not the client's. Failing
            # here saves a round trip that could only end in 401, and lets fallback move on.
            raise pe.missing_credentials()
        return key

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        options = dict(request.provider_options)
        if options.get("n") not in (None, 1):
            raise InvalidRequest("n > 1 is not supported for streamed generations", param="n")
        body: dict[str, Any] = {k: v for k, v in options.items() if k not in _RESERVED}
        if "tools" in body:
            body["tools"] = without_cache_control(body["tools"])
        stream_options = options.get("stream_options")
        asked = stream_options if isinstance(stream_options, dict) else {}
        body["stream_options"] = {**asked, **self._usage}
        body["model"] = request.upstream_model
        body["stream"] = True
        sampling = request.sampling
        if request.messages is not None:
            path = "/chat/completions"
            if not self._image_urls and any(
                not image.url.startswith("data:") for turn in request.messages for image in turn.images
            ):
                raise UnsupportedByBackend(
                    "image URLs are not fetched by this model's server: send the image inline (a data URL, "
                    "or a base64 source)", param="messages",
                )
            if any(turn.images and turn.role == "tool" for turn in request.messages):
                raise UnsupportedByBackend(
                    "images in a tool result are not supported by this model's API (OpenAI's tool messages "
                    "take text only)", param="messages",
                )
            calls = assistant_tool_calls(options)
            body["messages"] = [openai_turn(t, calls.get(i)) for i, t in enumerate(request.messages)]
            body[self._max_tokens_field] = sampling.max_tokens
        elif request.prompt is not None or request.prompt_tokens is not None:
            path = "/completions"
            body["prompt"] = request.prompt if request.prompt_tokens is None else list(request.prompt_tokens)
            body["max_tokens"] = sampling.max_tokens  # the legacy endpoint knows no other name
        else:
            raise InvalidRequest("a request needs messages or a prompt")
        if sampling.temperature is not None:
            body["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        if sampling.top_k is not None:
            if not self._send_top_k:
                raise UnsupportedByBackend("top_k is not supported by this model's API", param="top_k")
            body["top_k"] = sampling.top_k
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if request.end_user:
            body["user"] = request.end_user  # OpenAI's abuse attribution; compatible servers ignore it
        if request.prompt_cache_key and self._send_prompt_cache_key:
            body["prompt_cache_key"] = request.prompt_cache_key
        return self._base + path, body

    async def ready(self) -> bool:
        """Reachable *and* our credentials accepted: a backend that answers every request with 401
        is not ready in any sense that matters to routing."""
        try:
            status = await get_status(
                self._client, self._base + "/models", self._headers(self._api_key()), READY_TIMEOUT
            )
        except (TransportError, TimeoutError, TollgateError):
            return False
        return 200 <= status < 300

    async def generate(
        self, request: GenerationRequest, outcome: Outcome
    ) -> AsyncGenerator[list[str], None]:
        """Yield the text pieces of each network read and fill ``outcome`` from the provider's usage.

        Closing this generator early closes the response mid-body, which drops the connection, so
        the provider sees the disconnect and stops generating (and billing us).
        """
        url, body = self._body(request)
        key = self._api_key()
        secrets = (key,) if key else ()
        headers = {**self._headers(key), "content-type": "application/json"}
        watch = ReadWatch(self._timeouts)
        batches = sse_batches(self._client, url, orjson.dumps(body), headers, watch, secrets)
        # closed explicitly, so an early close reaches every generator down to the socket
        chat = request.messages is not None
        # the client asked for them: a chat says true, a completion how many alternatives (0 included)
        asked = request.provider_options.get("logprobs")
        logprobs = bool(asked) if chat else asked is not None and asked is not False
        # a Messages client that asked for thinking gets the server's reasoning as thinking blocks
        shows_reasoning = request.accepts_reasoning or request.thinking is not None
        reader = self._read(batches, outcome, chat, secrets, shows_reasoning, logprobs)
        async with aclosing(reader) as texts:
            async for pieces in texts:
                watch.answering()  # text or a tool call's piece: the shorter silence applies from here
                yield pieces

    async def _read(
        self, batches: AsyncGenerator[list[Event], None], outcome: Outcome, chat: bool,
        secrets: tuple[str, ...], accepts_reasoning: bool = False, logprobs: bool = False,
    ) -> AsyncGenerator[list[str], None]:
        finish: str | None = None
        tool_calls = ToolCallAssembler(outcome)
        reasoning = ReasoningRuns(outcome, tool_calls) if chat and accepts_reasoning else None
        done = False
        async with aclosing(batches):
            async for events in batches:
                if done:
                    continue  # read to the end of the body so the connection goes back to the pool
                pieces: list[str] = []
                failure: TollgateError | None = None  # raised after the text that came before it
                for event in events:
                    if done:
                        break
                    if event.data.strip() == "[DONE]":
                        done = True
                        continue
                    chunk = pe.parse_event(event.data)
                    if chunk.get("error") or event.event == "error":
                        failure = pe.error_from_stream_event(chunk, secrets)
                        break
                    usage = chunk.get("usage")
                    if isinstance(usage, dict):
                        apply_usage(usage, outcome)  # null on every chunk but the last; some repeat it
                    for choice in chunk.get("choices") or ():
                        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                            continue
                        if chat:
                            delta = choice.get("delta") or {}
                            if reasoning is not None and isinstance(
                                thought := delta.get("reasoning") or delta.get("reasoning_content"), str
                            ):
                                if pieces or outcome.tool_deltas:
                                    yield pieces  # what came before the reasoning goes first, on its own
                                    pieces = []
                                reasoning.add(thought)
                            text = delta.get("content")
                            add_tool_call_fragments(delta.get("tool_calls"), tool_calls)
                        else:
                            text = choice.get("text")
                        if isinstance(text, str) and text:
                            pieces.append(text)
                            if reasoning is not None:
                                reasoning.after_text(text)
                        if logprobs and choice.get("logprobs"):
                            read = content_entries if chat else completion_entries
                            outcome.logprobs.extend(read(choice["logprobs"]))
                        if choice.get("finish_reason"):
                            finish = str(choice["finish_reason"])
                if pieces or outcome.tool_deltas or outcome.thinking_deltas or outcome.logprobs:
                    yield pieces
                if failure is not None:
                    raise failure
        if not done:
            # A clean close without [DONE] is as incomplete as a reset: the answer may be cut short.
            raise pe.incomplete_stream()
        outcome.tool_calls = tool_calls.calls()
        if reasoning is not None:
            outcome.thinking = reasoning.blocks()
        if finish is None and outcome.tool_calls:
            finish = "tool_calls"
        outcome.finish_reason = _FINISH.get(finish or "stop", "stop")

    async def count_tokens(self, request: GenerationRequest) -> int:
        """The prompt's tokens as the server counts them, where it can (``openai_counting``): a prompt
        of token ids is its own count; a server with ``tokenize`` (vLLM) counts a chat or a prompt,
        OpenAI's own API (``input_tokens``) a chat. Otherwise ``UnsupportedByBackend``: the router asks
        the model's next deployment."""
        if request.prompt_tokens is not None:
            return len(request.prompt_tokens)
        if not self._tokenize and not (self._input_tokens and request.messages is not None):
            raise UnsupportedByBackend(COUNT_UNSUPPORTED)
        count = count_request(self._base, self._body(request)[1], tokenize=self._tokenize)
        key = self._api_key()
        headers = {**self._headers(key), "content-type": "application/json"}
        return await post_for_count(
            self._client, count.url, count.body, headers, self._timeouts.after_output, (key,) if key else (),
            count.field,
        )

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """``POST /embeddings``, vectors asked for in base64 (``embeddings.read_answer``). The whole
        answer is one JSON body, bounded by the silence allowed before a first output."""
        body: dict[str, object] = {
            "model": request.upstream_model, "encoding_format": "base64",
            "input": [i if isinstance(i, str) else list(i) for i in request.inputs],
        }
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.end_user:
            body["user"] = request.end_user
        key = self._api_key()
        headers = {"accept": "application/json", "content-type": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        answer = await post_json(
            self._client, self._base + "/embeddings", body, headers, self._timeouts.before_output,
            (key,) if key else (), ANSWER_LIMIT_BYTES,
        )
        return read_answer(answer, len(request.inputs))

    async def close(self) -> None:
        """Nothing to release: the HTTP client belongs to whoever built the backends."""
