"""An OpenAI-compatible ``/embeddings`` answer, read into ``Embeddings``.

The router asks for ``encoding_format: "base64"``: each vector then arrives as the little-endian
float32 bytes it travels on in (``EmbedResponse.embeddings``), decoded once, with no float parsing and
no rounding. A server that ignores the option (some compatible servers only write number lists) is
read all the same: its numbers are packed into float32, which is what OpenAI's own float output is.

A malformed answer (not JSON, vectors missing or of unequal size, an index out of place, a count
that is not a whole number) is the provider's fault: ``UpstreamError``, so fallback may move on.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from typing import Any

from services.common.errors import UpstreamError
from services.router.backends import Embeddings, as_count
from services.router.backends import provider_errors as pe

# The largest answer read: 2,048 inputs of 3,072 dimensions written as decimal numbers (about 20
# bytes each) is 126 MB; base64, which the router asks for, is a quarter of that.
ANSWER_LIMIT_BYTES = 128 * 1024 * 1024
LITTLE_ENDIAN = sys.byteorder == "little"


def _bad(what: str) -> UpstreamError:
    return UpstreamError(f"the upstream provider's embeddings answer {what}", code=pe.UPSTREAM_BAD_RESPONSE)


def float32_bytes(numbers: list[Any]) -> bytes:
    """``numbers`` as little-endian float32 bytes (what base64 output carries)."""
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
        raise _bad("has a vector with something other than numbers")
    packed = array("f", numbers)
    if not LITTLE_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def _vector(value: Any) -> bytes:
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("has a vector that is not base64") from None
        if len(raw) % 4:
            raise _bad("has a vector that is not float32")
        return raw
    if isinstance(value, list):
        return float32_bytes(value)
    raise _bad("has an item without a vector")


def read_answer(answer: object, inputs: int) -> Embeddings:
    """The vectors of an answer to ``inputs`` inputs, in the inputs' order, and its prompt tokens."""
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
        raise _bad("is not a list of embeddings")
    items: list[Any] = answer["data"]
    if len(items) != inputs:
        raise _bad(f"has {len(items)} vectors for {inputs} inputs")
    vectors: list[bytes | None] = [None] * inputs
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad("has an item that is not an object")
        index = item.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < inputs:
            raise _bad("has an item with an index out of range")
        if vectors[index] is not None:
            raise _bad("has two vectors for one input")
        vectors[index] = _vector(item.get("embedding"))
    sizes = {len(v) for v in vectors if v is not None}
    if len(sizes) != 1 or 0 in sizes:
        raise _bad("has vectors of different or no size")
    usage = answer.get("usage")
    tokens = as_count(usage.get("prompt_tokens")) if isinstance(usage, dict) else 0
    return Embeddings(tuple(v for v in vectors if v is not None), tokens)
