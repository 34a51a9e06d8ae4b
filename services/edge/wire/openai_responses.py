"""OpenAI response bodies we return: chat completions and their chunks, completions, usage, models.

The streaming encoders in ``services.edge.streams_openai`` write these shapes as ready-made bytes for
speed; the tests hold those bytes against these models and against the official SDK's types.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from services.edge.wire.base import ResponseModel

ChatFinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
CompletionFinishReason = Literal["stop", "length", "content_filter"]


class PromptTokensDetails(ResponseModel):
    cached_tokens: int = 0


class CompletionTokensDetails(ResponseModel):
    reasoning_tokens: int = 0


class Usage(ResponseModel):
    """``prompt_tokens`` counts every input token, cached ones included, as OpenAI counts them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails


class FunctionCall(ResponseModel):
    name: str
    arguments: str  # the model's JSON text, as generated


class ToolCall(ResponseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatCompletionMessage(ResponseModel):
    """``content`` is null when the model only called tools, as OpenAI answers."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = Field(default=None, exclude_if=lambda calls: calls is None)
    # a reasoning model's reasoning text, when its server gave it (vLLM's and OpenRouter's name)
    reasoning: str | None = Field(default=None, exclude_if=lambda text: text is None)
    # the same as blocks, signatures kept (OpenRouter's field: services/edge/reasoning_details.py)
    reasoning_details: list[dict[str, Any]] | None = Field(default=None, exclude_if=lambda d: d is None)


class ChatChoice(ResponseModel):
    index: int
    message: ChatCompletionMessage
    logprobs: dict[str, Any] | None = None  # {"content": [...], "refusal": null}, as the provider gave them
    finish_reason: ChatFinishReason


class ChatCompletion(ResponseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChunkFunction(ResponseModel):
    name: str | None = None  # on a call's first fragment
    arguments: str  # the next piece of the arguments' JSON text


class ChunkToolCall(ResponseModel):
    """A fragment of a tool call in a stream: ``index`` says which call it continues; the first
    fragment of a call carries its ``id``, ``type`` and ``function.name``, as OpenAI streams them."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChunkFunction


class ChunkDelta(ResponseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(ResponseModel):
    index: int
    delta: ChunkDelta
    logprobs: None = None
    finish_reason: ChatFinishReason | None


class ChatCompletionChunk(ResponseModel):
    """One ``data:`` event of a chat stream; the usage chunk has ``choices: []`` and ``usage`` set."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class CompletionChoice(ResponseModel):
    """``finish_reason`` is null on every streamed chunk but the last, as OpenAI streams it."""

    text: str
    index: int
    # the legacy format's {tokens, token_logprobs, top_logprobs, text_offset}, when the client asked
    logprobs: dict[str, list[Any]] | None = None
    finish_reason: CompletionFinishReason | None


class Completion(ResponseModel):
    """A legacy completion; a streamed chunk has the very same shape (OpenAI uses one type for both)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


CompletionChunk = Completion


class Model(ResponseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(ResponseModel):
    object: Literal["list"] = "list"
    data: list[Model]
