"""The boundary between the public wire formats and the router's internal messages, in one place.

Handlers import from here only: parse a body into a wire request (or a 400 in the API's own words),
turn it into the router's ``GenerateRequest``, and turn the router's answer back into a wire response
or an SSE stream. The work is done per API in ``convert_openai``, ``convert_completions``,
``convert_anthropic``, ``streams_openai`` and ``streams_anthropic``; this module only dispatches and
re-exports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.common.errors import TollgateError
from services.edge.anthropic_answer import build_message
from services.edge.convert_anthropic import messages_to_generate, parse_messages_request
from services.edge.convert_completions import (
    build_completion,
    completion_to_generate,
    for_prompt,
    parse_completion_request,
    prompt_inputs,
)
from services.edge.convert_openai import build_chat_completion, chat_to_generate, parse_chat_request
from services.edge.convert_responses_api import ResponsesChat
from services.edge.finish import finish_error
from services.edge.streams_anthropic import AnthropicMessageStream
from services.edge.streams_openai import OpenAIChatStream, OpenAICompletionStream
from services.edge.wire.anthropic import MessagesRequest
from services.edge.wire.openai import ChatCompletionRequest, CompletionRequest
from tollgate.router.v1 import router_pb2

__all__ = [
    "AnthropicMessageStream",
    "EventStream",
    "OpenAIChatStream",
    "OpenAICompletionStream",
    "PublicRequest",
    "build_chat_completion",
    "build_completion",
    "build_message",
    "finish_error",
    "parse_chat_request",
    "parse_completion_request",
    "parse_messages_request",
    "requested_max_tokens",
    "to_generate_request",
    "to_generate_requests",
]

PublicRequest = ChatCompletionRequest | CompletionRequest | MessagesRequest


class EventStream(Protocol):
    """What a streaming handler drives, whichever API it serves.

    ``thinking`` for every delta's pieces of thinking (which come before its text), ``delta`` for every
    piece of text and ``tool_calls`` for every delta's tool-call fragments (each opens the stream on
    first use), then exactly one of ``finish`` (the router's Finish, clean or
    failed) or ``error`` (the router stream broke without one). While ``started`` is false nothing has
    been sent, so a failure can still be a plain HTTP error. ``finish`` sends whatever of the Finish's
    calls the fragments did not. ``keep_alive`` is what to send while the router has nothing to say
    (a model thinking), before or between the rest: bytes every client of that API skips.
    """

    started: bool
    done: bool

    def start(self) -> bytes: ...
    def delta(self, text: str) -> bytes: ...
    def tool_calls(self, fragments: Sequence[router_pb2.ToolCallDelta]) -> bytes: ...
    def thinking(self, pieces: Sequence[router_pb2.ThinkingDelta]) -> bytes: ...
    def logprobs(self, content_json: str) -> bytes: ...
    def finish(self, finish: router_pb2.Finish) -> bytes: ...
    def error(self, exc: TollgateError) -> bytes: ...
    def keep_alive(self) -> bytes: ...


def requested_max_tokens(req: PublicRequest) -> int | None:
    """The client's own output limit, if it set one (admission reserves the worst case from it)."""
    if isinstance(req, ChatCompletionRequest):
        return req.effective_max_tokens
    return req.max_tokens


def max_tokens_param(req: PublicRequest) -> str:
    """The name the client gave its output limit (the one a 400 about it should name)."""
    if isinstance(req, ResponsesChat):
        return "max_output_tokens"
    if isinstance(req, ChatCompletionRequest) and req.max_completion_tokens is not None:
        return "max_completion_tokens"
    return "max_tokens"


def to_generate_request(
    req: PublicRequest, request_id: str, account_id: str, model_id: str, *, default_max_tokens: int
) -> router_pb2.GenerateRequest:
    """The router's request for a parsed public one.

    ``model_id`` is the catalog id the edge resolved (aliases followed), not ``req.model``.
    ``default_max_tokens`` applies when an OpenAI client set no limit (the router needs one; the
    catalog knows the model's); Anthropic requires ``max_tokens``, so it never applies there.
    """
    if isinstance(req, ChatCompletionRequest):
        generate = chat_to_generate(
            req, request_id, account_id, model_id, default_max_tokens=default_max_tokens
        )
    elif isinstance(req, CompletionRequest):
        generate = completion_to_generate(
            req, request_id, account_id, model_id, default_max_tokens=default_max_tokens
        )
    else:
        generate = messages_to_generate(req, request_id, account_id, model_id)
    generate.accepts_pieces = True  # the stream writes each piece as its own chunk
    generate.accepts_tool_call_deltas = True  # and streams tool calls as the model writes them
    # Chat Completions shows a reasoning model's reasoning (its `reasoning` field), the Responses API as
    # reasoning items; the Messages API has no place for unsigned thinking
    generate.accepts_reasoning = isinstance(req, ChatCompletionRequest)
    return generate


def to_generate_requests(
    req: PublicRequest, request_id: str, account_id: str, model_id: str, *, default_max_tokens: int
) -> list[router_pb2.GenerateRequest]:
    """The router's requests for a parsed public one, one per choice of the answer (``choices.py``):
    ``n`` for each of its prompts (a completion's batch), in the answer's order. Choice ``i`` of a prompt
    is seeded ``seed + i`` when the client set a seed, so the choices differ, and each is the answer a
    request with that seed alone would get; without a seed each samples on its own."""
    first = to_generate_request(req, request_id, account_id, model_id, default_max_tokens=default_max_tokens)
    if isinstance(req, CompletionRequest):
        prompts = [first] + [for_prompt(first, prompt) for prompt in prompt_inputs(req.prompt)[1:]]
    elif isinstance(req, ChatCompletionRequest):
        prompts = [first]
    else:
        return [first]  # the Messages API has no choices
    n = req.n or 1
    return [_seeded(generate, i) for generate in prompts for i in range(n)]


def _seeded(generate: router_pb2.GenerateRequest, choice: int) -> router_pb2.GenerateRequest:
    if choice == 0:
        return generate
    other = router_pb2.GenerateRequest()
    other.CopyFrom(generate)
    if other.sampling.HasField("seed"):
        other.sampling.seed = (other.sampling.seed + choice) & 0xFFFF_FFFF_FFFF_FFFF
    return other
