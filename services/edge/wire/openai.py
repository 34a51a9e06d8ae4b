"""OpenAI request bodies we accept: Chat Completions and (legacy) Completions, as the public spec has them.

These mirror the spec, including parts Tollgate does not serve yet (audio and file parts are parsed as
``UnsupportedPart`` and refused by the parse step with a message naming them), so that "not supported"
and "not valid" stay two different, clear answers. Image parts are served, to models whose catalog
entry takes image input. Response shapes: ``openai_responses``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Tag, field_validator

from services.edge.wire.base import (
    INT32_MAX,
    INT64_MAX,
    INT64_MIN,
    JsonObject,
    RequestModel,
    by_kind,
    by_role,
    by_type,
)

MaxTokens = Annotated[int, Field(ge=1, le=INT32_MAX)]
Seed = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Temperature = Annotated[float, Field(ge=0, le=2)]
TopP = Annotated[float, Field(gt=0, le=1)]
Penalty = Annotated[float, Field(ge=-2, le=2)]
StopList = Annotated[list[str], Field(max_length=4)]
Stop = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[StopList, Tag("<array>")],
    by_kind("a string or an array of strings"),
]


class TextPart(RequestModel):
    type: Literal["text"]
    text: str


class RefusalPart(RequestModel):
    type: Literal["refusal"]
    refusal: str


class ImageUrl(RequestModel):
    url: str = Field(min_length=1)  # an http(s) URL or a data: URL (checked by the parse step)
    detail: Literal["auto", "low", "high"] | None = None


class ImageUrlPart(RequestModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class UnsupportedPart(RequestModel):
    """A valid part of a kind our backends cannot take (input_audio, file)."""

    model_config = ConfigDict(extra="allow")
    type: Literal["input_audio", "file"]


UserPart = Annotated[
    Annotated[TextPart, Tag("<text>")]
    | Annotated[ImageUrlPart, Tag("<image_url>")]
    | Annotated[UnsupportedPart, Tag("<input_audio>")]
    | Annotated[UnsupportedPart, Tag("<file>")],
    by_type("'text', 'image_url', 'input_audio' or 'file'"),
]
AssistantPart = Annotated[
    Annotated[TextPart, Tag("<text>")] | Annotated[RefusalPart, Tag("<refusal>")],
    by_type("'text' or 'refusal'"),
]
TextContent = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[list[TextPart], Tag("<array>")],
    by_kind("a string or an array of text content parts"),
]
UserContent = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[list[UserPart], Tag("<array>")],
    by_kind("a string or an array of content parts"),
]
AssistantContent = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[list[AssistantPart], Tag("<array>")],
    by_kind("a string or an array of content parts"),
]


class SystemMessage(RequestModel):
    role: Literal["system"]
    content: TextContent
    name: str | None = None


class DeveloperMessage(RequestModel):
    role: Literal["developer"]
    content: TextContent
    name: str | None = None


class UserMessage(RequestModel):
    role: Literal["user"]
    content: UserContent
    name: str | None = None


class FunctionCall(RequestModel):
    name: str
    arguments: str


class ToolCall(RequestModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ReasoningDetail(BaseModel):
    """A block of an earlier answer's thinking, sent back as the client got it (``reasoning_details``,
    services/edge/reasoning_details.py). Fields of OpenRouter's entries that Tollgate does not write
    (``id``, ``format``, ``summary``) are ignored rather than refused: a client sends back what it got."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, allow_inf_nan=False)

    type: str
    text: str | None = None
    signature: str | None = None
    data: str | None = None
    index: Annotated[int, Field(ge=0, le=1024)] | None = None


class AssistantMessage(RequestModel):
    role: Literal["assistant"]
    content: AssistantContent | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning: str | None = None  # an earlier answer's reasoning, sent back: accepted, not sent on
    reasoning_content: str | None = None  # the same, by its older (DeepSeek) name
    reasoning_details: list[ReasoningDetail] | None = None  # its thinking blocks: a Claude model's go back
    audio: dict[str, Any] | None = None  # a reference to an earlier audio answer: refused when set
    function_call: dict[str, Any] | None = None  # deprecated by OpenAI: refused when set


class ToolMessage(RequestModel):
    role: Literal["tool"]
    content: TextContent
    tool_call_id: str


Message = Annotated[
    Annotated[SystemMessage, Tag("<system>")]
    | Annotated[DeveloperMessage, Tag("<developer>")]
    | Annotated[UserMessage, Tag("<user>")]
    | Annotated[AssistantMessage, Tag("<assistant>")]
    | Annotated[ToolMessage, Tag("<tool>")],
    by_role("'system', 'developer', 'user', 'assistant' or 'tool'"),
]


class FunctionDefinition(RequestModel):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: JsonObject | None = None
    strict: bool | None = None


class FunctionTool(RequestModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(RequestModel):
    name: str


class NamedToolChoice(RequestModel):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag("<string>")]
    | Annotated[NamedToolChoice, Tag("<object>")],
    by_kind("a string or an object"),
]


class JsonSchema(RequestModel):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: JsonObject | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextFormat(RequestModel):
    type: Literal["text"]


class JsonObjectFormat(RequestModel):
    type: Literal["json_object"]


class JsonSchemaFormat(RequestModel):
    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = Annotated[
    Annotated[TextFormat, Tag("<text>")]
    | Annotated[JsonObjectFormat, Tag("<json_object>")]
    | Annotated[JsonSchemaFormat, Tag("<json_schema>")],
    by_type("'text', 'json_object' or 'json_schema'"),
]


class StreamOptions(RequestModel):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # accepted; we never pad chunks, so there is nothing to turn off


class ChatCompletionRequest(RequestModel):
    """``POST /v1/chat/completions``. Fields the parse step refuses are documented in ``convert_openai``."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[Message], Field(min_length=1)]
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stop: Stop | None = None
    seed: Seed | None = None
    n: int | None = None
    user: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: Annotated[list[FunctionTool], Field(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None  # accepted and ignored: completions are never stored (DESIGN promise 4)
    service_tier: str | None = None  # accepted and ignored: one tier here
    prompt_cache_key: str | None = None  # routing affinity, sent on hashed (GenerateRequest.prompt_cache_key)
    safety_identifier: str | None = None  # like ``user``: sent on, hashed (GenerateRequest.end_user)

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # OpenAI's published limits: 16 pairs, keys up to 64 characters, values up to 512.
        if value is not None and (
            len(value) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in value.items())
        ):
            raise ValueError("at most 16 pairs, keys up to 64 characters and values up to 512")
        return value

    @property
    def effective_max_tokens(self) -> int | None:
        """``max_completion_tokens`` wins when both are given: it is the newer name, and OpenAI's choice."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


Prompt = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[list[Any], Tag("<array>")],
    by_kind("a string, an array of strings, or an array of token ids"),
]


class CompletionRequest(RequestModel):
    """``POST /v1/completions`` (legacy). The prompt's kinds (one prompt or a batch) are told apart by
    the parse step (``convert_completions.prompt_inputs``)."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    prompt: Prompt
    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stop: Stop | None = None
    seed: Seed | None = None
    n: int | None = None
    best_of: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    echo: bool | None = None
    suffix: str | None = None
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None  # alternatives per token (OpenAI allows 5)
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = None
    user: str | None = None
