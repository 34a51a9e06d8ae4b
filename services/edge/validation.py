"""Turn a pydantic ``ValidationError`` on a request body into the 400 each API's own clients expect.

OpenAI names the offending field in ``param`` (``messages[0].content``) and words the message its own
way ("Missing required parameter: 'model'."); Anthropic puts a dotted location in the message
(``messages.0.content.1.text.text: Field required``). Only the first error is reported, as both APIs
do. The exception is raised ``from None`` and messages quote at most a short value, so neither logs
nor tracebacks ever carry a prompt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from services.common.errors import InvalidRequest
from services.edge.wire.base import KIND_TAGS

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "none_required": "null",
}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
_QUOTE_LIMIT = 80


def _is_tag(segment: str | int) -> bool:
    return isinstance(segment, str) and segment.startswith("<") and segment.endswith(">")


def openai_param(loc: Sequence[str | int]) -> str:
    """``('messages', 0, '<user>', 'content')`` → ``messages[0].content`` (union tags dropped)."""
    out = ""
    for seg in loc:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif not _is_tag(seg):
            out += f".{seg}" if out else seg
    return out


def anthropic_loc(loc: Sequence[str | int]) -> str:
    """``('messages', 0, 'content', '<array>', 1, '<text>', 'text')`` → ``messages.0.content.1.text.text``."""
    return ".".join(str(s)[1:-1] if _is_tag(s) else str(s) for s in loc if s not in KIND_TAGS)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _quote(value: Any) -> str:
    """A short rendering of a bad value: strings cut, containers only named (never dumped whole)."""
    if isinstance(value, str):
        return f"'{value}'" if len(value) <= _QUOTE_LIMIT else f"'{value[:_QUOTE_LIMIT]}…'"
    if isinstance(value, list | dict):
        return _kind(value)
    return json.dumps(value)  # the stdlib encoder: a bad number may be beyond orjson's 64 bits


def _tag_field(err: ErrorDetails) -> str | None:
    return err["type"][4:] if err["type"].startswith("tag:") else None


def _first(exc: ValidationError) -> ErrorDetails:
    return exc.errors(include_url=False)[0]


def _body_error(err: ErrorDetails, api: str) -> InvalidRequest | None:
    if err["type"] == "json_invalid":
        if api == "openai":
            return InvalidRequest(
                "We could not parse the JSON body of your request: it is not valid JSON "
                f"({err.get('ctx', {}).get('error', 'invalid JSON')}). Send a JSON object with "
                "Content-Type: application/json."
            )
        return InvalidRequest(f"The request body is not valid JSON: {err.get('ctx', {}).get('error', '')}")
    if not err["loc"]:
        got = _kind(err["input"])
        return InvalidRequest(f"The request body must be a JSON object, but got {got} instead.")
    return None


def openai_error(exc: ValidationError) -> InvalidRequest:
    """The OpenAI-style 400 for the first problem in a request body."""
    err = _first(exc)
    if (body := _body_error(err, "openai")) is not None:
        return body
    loc, kind, value, ctx = err["loc"], err["type"], err["input"], err.get("ctx", {})
    param = openai_param(loc)
    if (field := _tag_field(err)) is not None:
        if not isinstance(value, dict):
            msg = f"Invalid type for '{param}': expected an object, but got {_kind(value)} instead."
            return InvalidRequest(msg, param=param, code="invalid_type")
        param = f"{param}.{field}"
        if field not in value:
            return InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                                  code="missing_required_parameter")
        msg = f"Invalid value for '{param}': {_quote(value[field])}. Supported values are: {err['msg']}."
        return InvalidRequest(msg, param=param, code="invalid_value")
    if kind == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                              code="missing_required_parameter")
    if kind == "extra_forbidden":
        return InvalidRequest(f"Unrecognized request argument supplied: {param}", param=param,
                              code=None if len(loc) == 1 else "unknown_parameter")
    if kind in _EXPECTED or kind == "kind":
        expected = _EXPECTED.get(kind, err["msg"])
        msg = f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead."
        return InvalidRequest(msg, param=param, code="invalid_type")
    if kind == "literal_error":
        msg = f"Invalid value for '{param}': {_quote(value)}. Supported values are: {ctx.get('expected')}."
        return InvalidRequest(msg, param=param, code="invalid_value")
    if kind in _BOUNDS:
        op = _BOUNDS[kind]
        limit = next(iter(ctx.values()), "?")
        number = "integer" if isinstance(value, int) else "decimal"
        side = "below_min" if op.startswith(">") else "above_max"
        msg = f"Invalid '{param}': expected a value {op} {limit}, but got {_quote(value)} instead."
        return InvalidRequest(msg, param=param, code=f"{number}_{side}_value")
    if kind == "too_short" and ctx.get("actual_length") == 0:
        msg = (f"Invalid '{param}': empty array. Expected an array with minimum length "
               f"{ctx.get('min_length')}, but got an empty array instead.")
        return InvalidRequest(msg, param=param, code="empty_array")
    if kind == "too_long":
        msg = (f"Invalid '{param}': array too long. Expected an array with maximum length "
               f"{ctx.get('max_length')}, but got an array with length {ctx.get('actual_length')} instead.")
        return InvalidRequest(msg, param=param, code="array_above_max_length")
    if kind == "value_error":
        return InvalidRequest(f"Invalid '{param}': {ctx.get('error')}.", param=param, code="invalid_value")
    return InvalidRequest(f"Invalid '{param}': {err['msg']}.", param=param, code="invalid_value")


def anthropic_error(exc: ValidationError) -> InvalidRequest:
    """The Anthropic-style 400 (``<location>: <problem>``) for the first problem in a request body."""
    err = _first(exc)
    if (body := _body_error(err, "anthropic")) is not None:
        return body
    where, value = anthropic_loc(err["loc"]), err["input"]
    if (field := _tag_field(err)) is not None:
        if not isinstance(value, dict):
            return InvalidRequest(f"{where}: Input should be a valid dictionary or object", param=where)
        where = f"{where}.{field}"
        if field not in value:
            return InvalidRequest(f"{where}: Field required", param=where)
        return InvalidRequest(f"{where}: Input should be {err['msg']}", param=where)
    if err["type"] == "kind":
        return InvalidRequest(f"{where}: Input should be {err['msg']}", param=where)
    if err["type"] == "value_error":
        return InvalidRequest(f"{where}: {err.get('ctx', {}).get('error')}", param=where)
    return InvalidRequest(f"{where}: {err['msg']}", param=where)
