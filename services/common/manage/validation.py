"""Turning a raw body or query string into a request model, or into one clear 400.

Messages follow OpenAI's phrasing where it has one (``Unrecognized request argument supplied: x``)
and name the offending field in ``param`` (dotted for nested fields: ``limits.budget_window``,
``tags[2]`` for an item of a list). The rejected value itself is not echoed: it could be anything,
including a pasted secret. Shared, so every management answer reads alike whichever service gives it.
"""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from services.common.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)
MAX_QUERY_FIELDS = 20


def _param(loc: tuple[int | str, ...]) -> str | None:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or None


def _message(err: ErrorDetails, param: str | None) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return f"Unrecognized request argument supplied: {param}"
    if kind == "missing":
        return f"Missing required parameter: '{param}'."
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if param is None:
        return msg
    return f"Invalid value for '{param}': {msg}."


def invalid(exc: ValidationError) -> InvalidRequest:
    """The first problem of a validation error, as the API's 400."""
    err = exc.errors(include_url=False, include_input=False)[0]
    param = _param(tuple(err["loc"]))
    return InvalidRequest(_message(err, param), param=param, code="invalid_value")


def parse_body(model: type[M], body: bytes) -> M:
    """A JSON object body (an empty body counts as ``{}``) validated against ``model``."""
    if body.strip():
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest(
                "We could not parse the JSON body of your request. The body must be a JSON object.",
                code="invalid_json",
            ) from None
    else:
        data = {}
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None


def parse_query(model: type[M], query: str) -> M:
    """An undecoded query string; a repeated parameter is refused rather than silently collapsed."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS) if query else []
    except ValueError:
        raise InvalidRequest(f"At most {MAX_QUERY_FIELDS} query parameters are accepted.") from None
    data: dict[str, str] = {}
    for name, value in pairs:
        if name in data:
            raise InvalidRequest(f"Query parameter '{name}' was given more than once.", param=name)
        data[name] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None
