"""``POST /v1/embeddings`` at the boundary: the request checked and turned into the router's
``EmbedRequest``, and the router's vectors written back as OpenAI's answer.

What is checked here, as OpenAI does: ``input`` is a non-empty string, or an array of at most 2,048
items that are all non-empty strings, or token ids (an array of integers, or arrays of them). An
item of another kind is refused by its place (``input[3]``), since a client sending a batch needs to
know which one. What only the model knows (an input over its context) is the backend's answer.

The vectors travel from the backend as little-endian float32 bytes: ``base64`` is those bytes
encoded, as OpenAI sends them; ``float`` is the same values as numbers, so both forms of an answer
decode to the same float32 vectors.
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

import orjson
from pydantic import ValidationError

from services.common.errors import InvalidRequest
from services.edge.end_user import end_user_id
from services.edge.token_ids import invalid_value, token_ids
from services.edge.validation import openai_error
from services.edge.wire.embeddings import EmbeddingItem, EmbeddingsRequest, EmbeddingsResponse
from tollgate.router.v1 import router_pb2

MAX_INPUTS = 2048  # OpenAI's limit on one request's inputs
LITTLE_ENDIAN = sys.byteorder == "little"


def parse_embeddings_request(body: bytes) -> tuple[EmbeddingsRequest, list[router_pb2.EmbedInput]]:
    """The validated request and its inputs as the router takes them, or InvalidRequest with OpenAI's
    ``param`` for the first problem."""
    try:
        req = EmbeddingsRequest.model_validate_json(body)
    except ValidationError as exc:
        raise openai_error(exc) from None
    return req, embed_inputs(req.input)


def _tokens(ids: list[Any], param: str) -> router_pb2.EmbedInput:
    return router_pb2.EmbedInput(tokens=token_ids(ids, param))


def _text(text: str, param: str) -> router_pb2.EmbedInput:
    if not text:
        raise invalid_value(param, "an input must not be an empty string.")
    return router_pb2.EmbedInput(text=text)


def embed_inputs(value: str | list[Any]) -> list[router_pb2.EmbedInput]:
    """The router's inputs for the client's ``input``, in order; a 400 naming the first item at fault."""
    if isinstance(value, str):
        return [_text(value, "input")]
    if not value:
        raise invalid_value("input", "it must not be an empty array.")
    if len(value) > MAX_INPUTS:
        raise invalid_value("input", f"an array holds at most {MAX_INPUTS} inputs; got {len(value)}.")
    first = value[0]
    if isinstance(first, int) and not isinstance(first, bool):
        return [_tokens(value, "input")]  # one input, as token ids
    inputs = []
    for index, item in enumerate(value):
        param = f"input[{index}]"
        if isinstance(item, str) and isinstance(first, str):
            inputs.append(_text(item, param))
        elif isinstance(item, list) and isinstance(first, list):
            inputs.append(_tokens(item, param))
        else:
            raise InvalidRequest(
                f"Invalid type for '{param}': an input array holds strings only, or token id arrays only.",
                param=param, code="invalid_type",
            )
    return inputs


def to_embed_request(
    req: EmbeddingsRequest, inputs: list[router_pb2.EmbedInput], request_id: str, account_id: str,
    model_id: str,
) -> router_pb2.EmbedRequest:
    return router_pb2.EmbedRequest(
        request_id=request_id, account_id=account_id, model=model_id, inputs=inputs,
        dimensions=req.dimensions or 0, end_user=end_user_id(account_id, req.user),
    )


def _numbers(vector: bytes) -> list[float]:
    values = array("f", vector)
    if not LITTLE_ENDIAN:
        values.byteswap()
    return values.tolist()


def embeddings_json(model: str, reply: router_pb2.EmbedResponse, encoding: str) -> bytes:
    """``build_embeddings`` as the response body."""
    return orjson.dumps(build_embeddings(model, reply, encoding))


def build_embeddings(model: str, reply: router_pb2.EmbedResponse, encoding: str) -> EmbeddingsResponse:
    """OpenAI's answer: the vectors in the inputs' order, in the encoding the client asked for."""
    data: list[EmbeddingItem] = [
        {"object": "embedding", "index": index,
         "embedding": base64.b64encode(vector).decode() if encoding == "base64" else _numbers(vector)}
        for index, vector in enumerate(reply.embeddings)
    ]
    tokens = reply.usage.input_tokens
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
