"""Token ids a client sends in place of text (an embedding's input, a legacy completion's prompt),
checked the one way both endpoints need: integers the router's ``TokenIds`` (int32) can carry, in an
array that is not empty. A bad id is refused by its place (``prompt[7]``), as OpenAI does."""

from __future__ import annotations

from typing import Any

from services.common.errors import InvalidRequest
from services.edge.wire.base import INT32_MAX
from tollgate.router.v1 import router_pb2


def invalid_value(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid '{param}': {message}", param=param, code="invalid_value")


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT32_MAX


def token_ids(ids: list[Any], param: str) -> router_pb2.TokenIds:
    """``ids`` as the router's ``TokenIds``, or a 400 naming the array or the first bad id in it."""
    if not ids:
        raise invalid_value(param, "an array of token ids must not be empty.")
    for index, value in enumerate(ids):
        if not _is_token_id(value):
            raise invalid_value(f"{param}[{index}]", f"token ids are integers from 0 to {INT32_MAX}.")
    return router_pb2.TokenIds(ids=ids)
