"""Shared pieces of the wire models: strict request parsing and union tags that error paths can read.

Requests are parsed strictly (no ``"5"`` → 5, no NaN) and reject unknown fields, because both vendors do
and a silently ignored typo (``max_token``) costs the caller money. Every union is dispatched by a
callable discriminator whose tags are written ``<name>``: pydantic puts the tag into the error location,
and the marker lets the error formatters tell a tag from a field name (OpenAI's ``param`` drops tags;
Anthropic's location keeps block types, as Anthropic's own errors do).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator

INT32_MAX = 2**31 - 1  # the router's SamplingParams are int32; larger values are a 400, not a crash
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

# The tags of JSON-kind unions (``str | list[...]``); neither API shows them in an error location.
KIND_TAGS = frozenset({"<string>", "<array>", "<object>"})


class RequestModel(BaseModel):
    """A request body or part of one: strict types, unknown fields rejected, immutable once parsed."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class ResponseModel(BaseModel):
    """A response body or event; built by us, so validation is only a guard against our own mistakes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _forwardable(value: dict[str, Any]) -> dict[str, Any]:
    """Free-form JSON (tool schemas, tool inputs) is sent on re-encoded, so it must stay encodable:
    pydantic's parser lets NaN/Infinity and integers of any size into ``Any``, and orjson refuses
    integers beyond 64 bits. (Depth needs no check: the parser stops at 200 levels, orjson at 254.)"""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        elif isinstance(item, int) and not INT64_MIN <= item <= UINT64_MAX:
            raise ValueError("integers must fit in 64 bits")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_forwardable)]


def json_kind(value: Any) -> str | None:
    """Tag a value by its JSON kind, for ``str | list`` and ``str | object`` unions."""
    if isinstance(value, str):
        return "<string>"
    if isinstance(value, list):
        return "<array>"
    if isinstance(value, dict | BaseModel):
        return "<object>"
    return None


def type_tag(value: Any) -> str | None:
    """Tag an object by its ``type`` field (content parts, blocks, response formats)."""
    tag = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"<{tag}>" if isinstance(tag, str) else None


def role_tag(value: Any) -> str | None:
    """Tag a chat message by its ``role`` field."""
    tag = value.get("role") if isinstance(value, dict) else getattr(value, "role", None)
    return f"<{tag}>" if isinstance(tag, str) else None


def by_kind(expected: str) -> Discriminator:
    """Dispatch a ``str | list | object`` union; a value of another kind is an ``invalid type`` error."""
    return Discriminator(json_kind, custom_error_type="kind", custom_error_message=expected)


def by_type(expected: str) -> Discriminator:
    """Dispatch on ``type``; ``expected`` lists the accepted values for the error message."""
    return Discriminator(type_tag, custom_error_type="tag:type", custom_error_message=expected)


def by_role(expected: str) -> Discriminator:
    """Dispatch on ``role``; ``expected`` lists the accepted values for the error message."""
    return Discriminator(role_tag, custom_error_type="tag:role", custom_error_message=expected)
