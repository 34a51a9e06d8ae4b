"""OpenAI Responses API (``POST /v1/responses``): the request bodies we accept and the response we return,
as OpenAI's public spec has them.

Stateless: nothing is stored, so a request must carry its whole conversation in ``input`` (an earlier
response's ``output`` items can be sent back as they came). Items and tools the platform cannot serve
(file inputs, server-side tools, item references, ``previous_response_id``) are parsed and refused by
the parse step with a message naming them, so "not supported" and "not valid" stay two different,
clear answers. Reasoning items an earlier response never carried (another service's encrypted
reasoning) are accepted and left out of what the model is sent.

Items that echo an earlier response's output (messages, function calls, their outputs) ignore fields
they do not know, unlike the rest of the request: OpenAI adds fields to output items over time, and a
client that sends a response's items back as they came must not be refused for a field it never wrote.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag

from services.edge.wire.base import INT32_MAX, JsonObject, RequestModel, ResponseModel, by_kind, by_type
from services.edge.wire.openai import JsonObjectFormat, Temperature, TextFormat, TopP


class InputText(RequestModel):
    type: Literal["input_text"]
    text: str


class InputImage(RequestModel):
    type: Literal["input_image"]
    image_url: str | None = None  # an http(s) URL or a data: URL (checked by the parse step)
    file_id: str | None = None  # refused: no files are stored here
    detail: Literal["auto", "low", "high"] | None = None


class InputFile(RequestModel):
    """A file part (a PDF): refused by the parse step, the models served here take text and images."""

    model_config = ConfigDict(extra="allow")
    type: Literal["input_file"]


class EchoedItem(RequestModel):
    """An item or part that may come back from an earlier response's output: unknown fields ignored."""

    model_config = ConfigDict(extra="ignore")


class OutputText(EchoedItem):
    """An earlier answer's text, as a response's ``output`` carried it."""

    type: Literal["output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class Refusal(EchoedItem):
    type: Literal["refusal"]
    refusal: str


InputPart = Annotated[
    Annotated[InputText, Tag("<input_text>")]
    | Annotated[InputImage, Tag("<input_image>")]
    | Annotated[InputFile, Tag("<input_file>")]
    | Annotated[OutputText, Tag("<output_text>")]
    | Annotated[Refusal, Tag("<refusal>")],
    by_type("'input_text', 'input_image', 'input_file', 'output_text' or 'refusal'"),
]
Content = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[list[InputPart], Tag("<array>")],
    by_kind("a string or an array of content parts"),
]


class MessageItem(EchoedItem):
    """A message: the client's (``role`` user, system or developer) or an earlier answer (assistant)."""

    type: Literal["message"] | None = None
    role: Literal["user", "system", "developer", "assistant"]
    content: Content
    id: str | None = None
    status: str | None = None


class FunctionCallItem(EchoedItem):
    """A call the model made in an earlier answer."""

    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(EchoedItem):
    """The client's result of a call."""

    type: Literal["function_call_output"]
    call_id: str
    output: Content
    id: str | None = None
    status: str | None = None


class ReasoningItem(RequestModel):
    """An earlier answer's reasoning: a Claude block this platform wrote into ``encrypted_content`` goes
    back to the provider with the assistant turn after it; anything else (OpenAI's own encrypted
    reasoning, reasoning text) is accepted and not sent on, since no provider here can take it."""

    model_config = ConfigDict(extra="allow")
    type: Literal["reasoning"]


class UnsupportedItem(RequestModel):
    """A valid item of a kind the platform cannot serve (references to stored items, server tools'
    calls); the parse step names it in a 400."""

    model_config = ConfigDict(extra="allow")
    type: str


def _item_kind(value: Any) -> str | None:
    """Items are told apart by ``type``; a message may leave it out (``{"role": ..., "content": ...}``)."""
    if isinstance(value, dict):
        kind = value.get("type", "message" if "role" in value else None)
    else:
        kind = getattr(value, "type", None) or ("message" if hasattr(value, "role") else None)
    if kind in ("message", "function_call", "function_call_output", "reasoning"):
        return f"<{kind}>"
    return "<other>" if isinstance(kind, str) else None


Item = Annotated[
    Annotated[MessageItem, Tag("<message>")]
    | Annotated[FunctionCallItem, Tag("<function_call>")]
    | Annotated[FunctionCallOutputItem, Tag("<function_call_output>")]
    | Annotated[ReasoningItem, Tag("<reasoning>")]
    | Annotated[UnsupportedItem, Tag("<other>")],
    Discriminator(_item_kind, custom_error_type="tag:type", custom_error_message="an item with a 'type'"),
]
Input = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[Annotated[list[Item], Field(min_length=1)], Tag("<array>")],
    by_kind("a string or an array of input items"),
]


class FunctionTool(RequestModel):
    type: Literal["function"]
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: JsonObject | None = None
    strict: bool | None = None


class ServerTool(RequestModel):
    """A tool OpenAI runs itself (web search, file search, code interpreter, ...): refused by name."""

    model_config = ConfigDict(extra="allow")
    type: str


def _tool_kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return None if not isinstance(kind, str) else "<function>" if kind == "function" else "<server>"


AnyTool = Annotated[
    Annotated[FunctionTool, Tag("<function>")] | Annotated[ServerTool, Tag("<server>")],
    Discriminator(_tool_kind, custom_error_type="tag:type", custom_error_message="a tool with a 'type'"),
]


class NamedFunction(RequestModel):
    type: Literal["function"]
    name: str


class OtherToolChoice(RequestModel):
    """A choice of a server tool or of an allowed set: refused by the parse step."""

    model_config = ConfigDict(extra="allow")
    type: str


def _choice_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "<string>"
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return None if not isinstance(kind, str) else "<function>" if kind == "function" else "<other>"


ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag("<string>")]
    | Annotated[NamedFunction, Tag("<function>")]
    | Annotated[OtherToolChoice, Tag("<other>")],
    Discriminator(_choice_kind, custom_error_type="kind", custom_error_message="a string or an object"),
]


class JsonSchemaFormat(RequestModel):
    """Chat's ``json_schema`` format flattened: its ``name`` and ``schema`` at the format's top level."""

    type: Literal["json_schema"]
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    schema_: JsonObject = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


Format = Annotated[
    Annotated[TextFormat, Tag("<text>")]
    | Annotated[JsonObjectFormat, Tag("<json_object>")]
    | Annotated[JsonSchemaFormat, Tag("<json_schema>")],
    by_type("'text', 'json_object' or 'json_schema'"),
]


class Text(RequestModel):
    format: Format | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(RequestModel):
    """``effort`` goes on as Chat Completions' ``reasoning_effort``. A ``summary`` is accepted and none
    is returned: Chat Completions, which reaches the providers, gives no reasoning to summarise."""

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class StreamOptions(RequestModel):
    include_obfuscation: bool | None = None  # accepted; we never pad events, so there is nothing to turn off


class ResponsesRequest(RequestModel):
    """``POST /v1/responses``. What the parse step refuses beyond the spec: see ``convert_responses_api``."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    input: Input
    instructions: str | None = None
    max_output_tokens: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: Annotated[list[AnyTool], Field(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: Text | None = None
    reasoning: Reasoning | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    store: bool | None = None  # accepted: nothing is stored whatever it says (DESIGN promise 4)
    service_tier: str | None = None  # accepted and ignored: one tier here
    # served: "reasoning.encrypted_content" and "message.output_text.logprobs"; the rest produce nothing
    include: list[str] | None = None
    # alternatives per token in the answer's logprobs (asking for them, as the include entry does)
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    truncation: Literal["auto", "disabled"] | None = None  # "auto" is refused: nothing is dropped to fit
    # refused when set: each needs state or machinery this platform does not have
    previous_response_id: str | None = None
    conversation: str | JsonObject | None = None
    background: bool | None = None
    prompt: JsonObject | None = None
    max_tool_calls: int | None = None


# --- the response ---------------------------------------------------------------------------------


class OutputTextPart(ResponseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputMessage(ResponseModel):
    id: str
    type: Literal["message"] = "message"
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"] = "assistant"
    content: list[OutputTextPart]


class OutputFunctionCall(ResponseModel):
    id: str
    type: Literal["function_call"] = "function_call"
    status: Literal["in_progress", "completed", "incomplete"]
    call_id: str
    name: str
    arguments: str


class ReasoningText(ResponseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class OutputReasoning(ResponseModel):
    """A model's reasoning text (no summary). A Claude model's signed or redacted block also travels
    whole in ``encrypted_content`` when the request's ``include`` asks for it
    (services/edge/reasoning_details.py), so a stateless client can send it back."""

    id: str
    type: Literal["reasoning"] = "reasoning"
    status: Literal["in_progress", "completed", "incomplete"]
    summary: list[Any] = Field(default_factory=list)
    content: list[ReasoningText]
    encrypted_content: str | None = Field(default=None, exclude_if=lambda value: value is None)


class InputTokensDetails(ResponseModel):
    cached_tokens: int
    cache_write_tokens: int


class OutputTokensDetails(ResponseModel):
    reasoning_tokens: int


class ResponseUsage(ResponseModel):
    """As OpenAI counts: ``input_tokens`` includes the cached ones and the cache writes, which
    ``input_tokens_details`` breaks out; reasoning is part of ``output_tokens``."""

    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(ResponseModel):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseError(ResponseModel):
    code: str
    message: str


class Response(ResponseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    model: str
    output: list[OutputReasoning | OutputMessage | OutputFunctionCall]
    usage: ResponseUsage | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    parallel_tool_calls: bool = True
    temperature: float | None = None
    top_p: float | None = None
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    reasoning: dict[str, Any] | None = None
    previous_response_id: None = None
    store: bool = False  # nothing is stored here, whatever the request said
    truncation: Literal["disabled"] = "disabled"
    top_logprobs: int | None = None
    user: str | None = None
