"""Responses in each API's own format: errors (OpenAI or Anthropic body, right status, Retry-After,
``x-should-retry``), JSON bodies via orjson, and the request body read with a size limit."""

from __future__ import annotations

import math
from typing import Any, Literal

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from services.common.errors import PayloadTooLarge, TollgateError
from services.common.numbers import whole_number

Flavor = Literal["openai", "anthropic"]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def model_response(body: BaseModel, headers: dict[str, str] | None = None) -> Response:
    """A wire model as the JSON body, written by pydantic-core straight to bytes: the same bytes as
    orjson over ``model_dump(mode="json")``, without the intermediate dict."""
    return Response(
        body.__pydantic_serializer__.to_json(body), media_type="application/json", headers=headers
    )


def error_response(exc: TollgateError, flavor: Flavor, headers: dict[str, str] | None = None) -> Response:
    body = exc.to_anthropic() if flavor == "anthropic" else exc.to_openai()
    headers = {**(headers or {}), **exc.headers}
    if exc.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.should_retry is not None:  # the OpenAI and Anthropic SDKs obey it before their own rules
        headers["x-should-retry"] = "true" if exc.should_retry else "false"
    return json_response(body, exc.http_status, headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it passes ``limit`` — never buffering more."""
    declared = whole_number(request.headers.get("content-length") or "")
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"Request body too large: the limit is {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body too large: the limit is {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
