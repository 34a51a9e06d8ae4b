"""Anthropic Messages request bodies we accept, as Anthropic's public spec has them.

Block types Tollgate cannot serve yet (documents, search results, server tools) are parsed as
``UnsupportedBlock`` and refused by the parse step with a message naming the block, so "not supported"
and "not valid" stay two different, clear answers. Image blocks in user turns and in tool results are
served, to models whose catalog entry takes image input; thinking blocks in assistant turns go back to
the provider that wrote them. Response shapes: ``anthropic_responses``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, model_validator

from services.edge.wire.base import INT32_MAX, JsonObject, RequestModel, by_kind, by_type

_UNSUPPORTED_TYPES = ("document", "search_result", "server_tool_use", "web_search_tool_result")
ImageMediaType = Literal["image/jpeg", "image/png", "image/gif", "image/webp"]


class CacheControl(RequestModel):
    """A prompt-cache breakpoint. Messages reach the router flattened to text, so the edge sends each
    breakpoint as an offset into its turn's text, and the Anthropic adapter puts it back on a block."""

    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class TextBlock(RequestModel):
    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = None
    citations: list[dict[str, Any]] | None = None


class Base64ImageSource(RequestModel):
    type: Literal["base64"]
    media_type: ImageMediaType
    data: str = Field(min_length=1)  # checked to be base64 by the parse step


class UrlImageSource(RequestModel):
    type: Literal["url"]
    url: str = Field(min_length=1)


ImageSource = Annotated[
    Annotated[Base64ImageSource, Tag("<base64>")] | Annotated[UrlImageSource, Tag("<url>")],
    by_type("'base64' or 'url'"),
]


class ImageBlock(RequestModel):
    type: Literal["image"]
    source: ImageSource
    cache_control: CacheControl | None = None


class UnsupportedBlock(RequestModel):
    """A valid block of a kind our text-only backends cannot take; the parse step names it in a 400."""

    model_config = ConfigDict(extra="allow")
    type: Literal["document", "search_result", "server_tool_use", "web_search_tool_result"]


ToolResultPart = Annotated[
    Annotated[TextBlock, Tag("<text>")]
    | Annotated[ImageBlock, Tag("<image>")]
    | Annotated[UnsupportedBlock, Tag("<document>")]
    | Annotated[UnsupportedBlock, Tag("<search_result>")],
    by_type("'text', 'image', 'document' or 'search_result'"),
]
ToolResultContent = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[list[ToolResultPart], Tag("<array>")],
    by_kind("a string or an array of content blocks"),
]


class ThinkingBlock(RequestModel):
    """A block of an earlier answer's extended thinking, sent back as the provider returned it (its
    signature proves that); in assistant turns only."""

    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(RequestModel):
    type: Literal["redacted_thinking"]
    data: str


class ToolUseBlock(RequestModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: JsonObject
    cache_control: CacheControl | None = None


class ToolResultBlock(RequestModel):
    type: Literal["tool_result"]
    tool_use_id: str
    content: ToolResultContent | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("<text>")]
    | Annotated[ToolUseBlock, Tag("<tool_use>")]
    | Annotated[ToolResultBlock, Tag("<tool_result>")]
    | Annotated[ImageBlock, Tag("<image>")]
    | Annotated[UnsupportedBlock, Tag("<document>")]
    | Annotated[UnsupportedBlock, Tag("<search_result>")]
    | Annotated[ThinkingBlock, Tag("<thinking>")]
    | Annotated[RedactedThinkingBlock, Tag("<redacted_thinking>")]
    | Annotated[UnsupportedBlock, Tag("<server_tool_use>")]
    | Annotated[UnsupportedBlock, Tag("<web_search_tool_result>")],
    by_type("'text', 'tool_use', 'tool_result', 'image', 'thinking', 'redacted_thinking', "
            + ", ".join(f"'{t}'" for t in _UNSUPPORTED_TYPES)),
]
Content = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[list[ContentBlock], Tag("<array>")],
    by_kind("a string or an array of content blocks"),
]


class MessageParam(RequestModel):
    role: Literal["user", "assistant"]
    content: Content


System = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[list[TextBlock], Tag("<array>")],
    by_kind("a string or an array of text blocks"),
]


class Tool(RequestModel):
    """A client ("custom") tool, the only kind the router can hand to a backend."""

    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,128}$")]
    input_schema: JsonObject
    description: str | None = None
    type: Literal["custom"] | None = None
    cache_control: CacheControl | None = None


class ServerTool(RequestModel):
    """A tool Anthropic runs itself (web search, code execution, ...): parsed, then refused by name."""

    model_config = ConfigDict(extra="allow")
    type: str


def _tool_kind(value: Any) -> str | None:
    if not isinstance(value, dict | Tool | ServerTool):
        return None
    kind = value.get("type") if isinstance(value, dict) else value.type
    return "<custom>" if kind in (None, "custom") else "<server>"


AnyTool = Annotated[
    Annotated[Tool, Tag("<custom>")] | Annotated[ServerTool, Tag("<server>")],
    Discriminator(_tool_kind, custom_error_type="kind", custom_error_message="an object"),
]


class ToolChoice(RequestModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None

    @model_validator(mode="after")
    def _name_iff_tool(self) -> ToolChoice:
        if (self.type == "tool") != (self.name is not None):
            raise ValueError("'name' is required when type is 'tool' and not allowed otherwise")
        return self


class Thinking(RequestModel):
    """Extended thinking: ``enabled`` with a budget (at least 1,024 tokens, less than ``max_tokens``;
    the parse step checks both), or ``adaptive`` (the model decides how much)."""

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None
    display: Literal["summarized", "omitted"] | None = None


class Metadata(RequestModel):
    user_id: Annotated[str, Field(max_length=256)] | None = None


class JsonOutputFormat(RequestModel):
    """Structured outputs: the answer is JSON that follows ``schema`` (``output_config.format``)."""

    type: Literal["json_schema"]
    schema_: JsonObject = Field(alias="schema")


class OutputConfig(RequestModel):
    """``output_config``: only ``format`` is served (``effort`` is refused as an unknown field)."""

    format: JsonOutputFormat | None = None


class MessagesRequest(RequestModel):
    """``POST /v1/messages``. What the parse step refuses beyond the spec: see ``convert_anthropic``."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    max_tokens: Annotated[int, Field(ge=1, le=INT32_MAX)]
    messages: Annotated[list[MessageParam], Field(min_length=1)]
    system: System | None = None
    stop_sequences: list[str] | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0, le=INT32_MAX)] | None = None
    stream: bool | None = None
    metadata: Metadata | None = None
    tools: list[AnyTool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    service_tier: Literal["auto", "standard_only"] | None = None  # accepted and ignored: one tier here
    output_config: OutputConfig | None = None
    cache_control: CacheControl | None = None  # automatic caching: a breakpoint on the last block


class CountTokensRequest(RequestModel):
    """``POST /v1/messages/count_tokens``: the prompt side of a Messages request (no ``max_tokens``,
    no sampling, no stream), as Anthropic takes it."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[MessageParam], Field(min_length=1)]
    system: System | None = None
    tools: list[AnyTool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    cache_control: CacheControl | None = None
