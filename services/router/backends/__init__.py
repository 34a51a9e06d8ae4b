"""Backends the router can send a generation to (Triton, OpenAI-compatible providers, Anthropic).

Each backend turns one ``GenerationRequest`` into a stream of text pieces (in batches: what one
network read brought) and fills an ``Outcome`` with the usage the backend itself reported (never
counted from string length). Errors are raised as ``services.common.errors`` types so that fallback
can decide what is retryable.

Tool calls travel twice, in the ``Outcome``: as fragments while the model writes them
(``tool_deltas``, taken by the server after each batch and streamed, so a client sees a call's
arguments grow as it would calling the provider directly), and whole at the end (``tool_calls``,
which non-streamed answers and the Finish carry). ``tool_call_fragments.ToolCallAssembler`` keeps the
two consistent for every provider. Extended thinking (Anthropic's) travels the same two ways
(``thinking_deltas``, then ``thinking`` whole), kept consistent by ``thinking.ThinkingAssembler``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.common.errors import UnsupportedByBackend


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class CacheBreakpoint:
    """Cache the prompt up to here: ``offset`` into the turn's content (code points); at the end of
    the content it marks the turn's last block. Only providers with explicit caching (Anthropic) use
    it; OpenAI-compatible ones cache prefixes on their own."""

    offset: int
    ttl: str = ""  # "" (the provider's default) | "5m" | "1h"


@dataclass(frozen=True)
class Image:
    """An image of a user turn, at ``offset`` into the turn's content (code points): the text before
    and after it were separate parts, with nothing added between them. ``url`` is an http(s) URL or a
    ``data:`` URL holding the image in base64."""

    offset: int
    url: str
    detail: str = ""  # OpenAI's auto | low | high; "" = the provider's default
    cache: CacheBreakpoint | None = None  # cache the prompt up to and including this image


@dataclass(frozen=True)
class ThinkingBlock:
    """A block of a model's extended thinking, whole: its text and signature, or a redacted block's
    data. The provider checks the signature when an earlier turn's block comes back, so it travels
    unchanged. Placed at ``offset`` into its turn's text (code points) when no tool call came before
    it, else right after its turn's ``after_calls``-th call."""

    thinking: str = ""
    signature: str = ""
    redacted: str = ""
    offset: int = 0
    after_calls: int = 0

    @property
    def signed(self) -> bool:
        """Anthropic's own record (signed, or redacted), which Anthropic takes back. An unsigned block
        is another model's reasoning text (an OpenAI-compatible server's), which it would refuse."""
        return bool(self.signature or self.redacted)


@dataclass(frozen=True)
class ThinkingDelta:
    """A piece of thinking block ``index`` (proto ``ThinkingDelta``): the next piece of its text, its
    signature at its end, or a redacted block whole."""

    index: int
    thinking: str = ""
    signature: str = ""
    redacted: str = ""


@dataclass(frozen=True)
class ThinkingConfig:
    """The client asked the model to think first (Anthropic's ``thinking``); only Anthropic providers can."""

    type: str  # enabled | adaptive
    budget_tokens: int = 0  # type enabled: the most tokens of thinking, part of max_tokens
    display: str = ""  # "" (the model's default) | summarized | omitted


@dataclass(frozen=True)
class ChatTurn:
    role: str  # system | user | assistant | tool
    content: str
    name: str = ""
    tool_call_id: str = ""
    cache_breakpoints: tuple[CacheBreakpoint, ...] = ()
    tool_failed: bool = False  # a tool result reporting the tool's failure; OpenAI's API cannot say it
    images: tuple[Image, ...] = ()  # in content order
    thinking: tuple[ThinkingBlock, ...] = ()  # an assistant turn's, in the order the model wrote them


def text_and_images(turn: ChatTurn) -> list[str | Image]:
    """The turn's parts in the client's order: its text cut at the images' offsets (no empty text)."""
    parts: list[str | Image] = []
    start = 0
    for image in turn.images:
        if image.offset > start:
            parts.append(turn.content[start:image.offset])
            start = image.offset
        parts.append(image)
    if start < len(turn.content) or not parts:
        parts.append(turn.content[start:])
    return parts


@dataclass(frozen=True)
class GenerationRequest:
    """What one backend attempt needs; exactly one of ``messages``, ``prompt`` and ``prompt_tokens``
    (a completion prompt as token ids) is set."""

    request_id: str
    upstream_model: str
    sampling: Sampling
    messages: tuple[ChatTurn, ...] | None = None
    prompt: str | None = None
    prompt_tokens: tuple[int, ...] | None = None
    provider_options: Mapping[str, Any] = field(default_factory=dict)  # tools, response_format, ...
    chat_template: str | None = None  # the catalog model's template, for backends that take a prompt
    end_user: str | None = None  # hashed end-user id for providers' abuse attribution (edge's end_user.py)
    prompt_cache_key: str | None = None  # hashed like end_user; OpenAI's API routes its cache by it
    thinking: ThinkingConfig | None = None  # None: no thinking asked for
    accepts_reasoning: bool = False  # the caller shows a model's reasoning text (OpenAI-compatible servers')


def refuse_thinking(request: GenerationRequest) -> None:
    """For backends without extended thinking or reasoning (Triton): a request that asks for it is
    refused as unsupported (fallback moves on to a deployment that can). Thinking blocks of earlier
    turns are another provider's signed record, which a model here cannot read: they are left out, as
    Anthropic itself leaves out those of earlier turns."""
    if request.thinking is not None:
        raise UnsupportedByBackend("extended thinking is not supported by this model", param="thinking")


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for, whole: its arguments are the model's JSON text, as the
    provider streamed it (not parsed: a model may produce invalid JSON, and the client decides)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A fragment of one call (proto ``ToolCallDelta``): ``id`` on the call's first fragment only,
    ``name`` once, ``arguments`` the next piece of its JSON text."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class Outcome:
    """Normalised usage as the backend reported it, and why generation stopped.

    ``input_tokens`` excludes cached and cache-write tokens; ``reasoning_tokens`` is part of
    ``output_tokens`` (reported separately, never added twice).
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    # stop | stop_sequence (a backend that says which) | length | tool_calls | content_filter | error
    # | cancelled
    finish_reason: str = "stop"
    stop_sequence: str | None = None  # the stop sequence that ended it, when the backend says so
    usage_reported: bool = False  # False when the upstream omitted usage
    tool_calls: list[ToolCall] = field(default_factory=list)  # in the order the model made them
    tool_deltas: list[ToolCallDelta] = field(default_factory=list)  # fragments not yet taken by the caller
    thinking: list[ThinkingBlock] = field(default_factory=list)  # whole, at the end (when asked for)
    thinking_deltas: list[ThinkingDelta] = field(default_factory=list)  # not yet taken by the caller
    # log probability entries of the tokens read since the last take (the client asked for logprobs):
    # a chat's logprobs.content entries, or a completion's per-token entries (backends/logprobs.py)
    logprobs: list[dict[str, Any]] = field(default_factory=list)

    def take_tool_deltas(self) -> list[ToolCallDelta]:
        """The fragments that arrived since the last take (the caller streams them)."""
        taken, self.tool_deltas = self.tool_deltas, []
        return taken

    def take_logprobs(self) -> list[dict[str, Any]]:
        taken, self.logprobs = self.logprobs, []
        return taken

    def take_thinking_deltas(self) -> list[ThinkingDelta]:
        """The thinking pieces that arrived since the last take (the caller streams them)."""
        taken, self.thinking_deltas = self.thinking_deltas, []
        return taken


def as_count(value: Any) -> int:
    """A token count from a provider's JSON: a real int, else 0 (never a bool, float or string)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class EmbeddingRequest:
    """What one backend attempt at embedding needs. An input is a text, or token ids (OpenAI's arrays
    of integers), which only servers that take them are sent."""

    request_id: str
    upstream_model: str
    inputs: tuple[str | tuple[int, ...], ...]
    dimensions: int | None = None  # None: the model's own size
    end_user: str | None = None  # hashed like GenerationRequest.end_user


@dataclass(frozen=True)
class Embeddings:
    """One vector per input, in order, each little-endian float32 bytes; the backend's token count of
    all the inputs (never counted from string length)."""

    vectors: tuple[bytes, ...]
    input_tokens: int


EMBEDDINGS_UNSUPPORTED = "Embeddings are not supported by this model's deployments."

COUNT_UNSUPPORTED = (
    "Counting tokens is not supported for this model: its deployments (OpenAI-compatible servers "
    "without vLLM's /tokenize, or Triton servers without TensorRT-LLM's preprocessing model) cannot "
    "count them without generating."
)


class Backend(Protocol):
    async def ready(self) -> bool: ...

    def generate(self, request: GenerationRequest, outcome: Outcome) -> AsyncGenerator[list[str], None]:
        """Batches of text pieces: each batch is what arrived together (one network read), each
        piece one upstream chunk; empty only when the read brought tool-call fragments alone (they
        wait in ``outcome.tool_deltas``). An async generator, so callers can ``aclose()`` it: closing
        cancels the upstream call."""
        ...

    async def count_tokens(self, request: GenerationRequest) -> int:
        """The request's input tokens as the model counts them (nothing generated), or
        ``UnsupportedByBackend`` when this backend has no way to count."""
        ...

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """The inputs' embedding vectors, or ``UnsupportedByBackend`` when this backend has no
        embeddings (or not for what was asked: token ids, a size). Cancelling the awaiting task
        cancels the upstream call."""
        ...

    async def close(self) -> None: ...
