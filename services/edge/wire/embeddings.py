"""OpenAI's ``POST /v1/embeddings``: the request we accept and the answer's shape.

``input`` is parsed loosely here (a string or an array of anything) and checked item by item in
``convert_embeddings``: its four accepted forms (a string, strings, token ids, arrays of token ids)
as one pydantic union would answer a wrong item with an error about every form at once, where the
client needs the one item at fault.

The answer is typed, not validated: a ``ResponseModel`` would check each of up to millions of numbers
on the way out, which only costs time for an answer the edge built itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

from pydantic import Field, Tag

from services.edge.wire.base import RequestModel, by_kind

EmbeddingInput = Annotated[
    Annotated[str, Tag("<string>")] | Annotated[list[Any], Tag("<array>")],
    by_kind("a string or an array"),
]


class EmbeddingsRequest(RequestModel):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1, le=65536)] | None = None
    user: str | None = None


class EmbeddingItem(TypedDict):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # numbers, or little-endian float32 bytes in base64


class EmbeddingsUsage(TypedDict):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(TypedDict):
    object: Literal["list"]
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingsUsage
