"""OpenAI's ``response_format`` as Anthropic's structured outputs (``output_config.format``).

Claude models with structured outputs constrain their answer to a JSON Schema, as OpenAI's
``json_schema`` format does: the schema goes over as it is, and the answer is ordinary text (the
JSON), so nothing changes on the way back. ``text`` asks for nothing. ``json_object`` (JSON of any
shape) has no Anthropic equivalent, so it is refused by name before anything is sent, and the
model's next deployment is asked; the client can send a schema instead. A model without structured
outputs answers the request with its own 400, which reaches the client as the provider's error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.errors import UnsupportedByBackend

RESPONSE_FORMAT = "response_format"


def output_config(options: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``output_config`` the request's ``response_format`` asks for (None: nothing asked)."""
    given = options.get(RESPONSE_FORMAT)
    if given is None:
        return None
    kind = given.get("type") if isinstance(given, dict) else None
    if kind == "text":
        return None
    if kind == "json_schema":
        schema = given.get("json_schema")
        schema = schema.get("schema") if isinstance(schema, dict) else None
        if isinstance(schema, dict):
            return {"format": {"type": "json_schema", "schema": schema}}
    raise UnsupportedByBackend(
        "this model's API constrains answers to a JSON schema only: send response_format of type "
        "'json_schema' with a schema ('json_object' has no equivalent here)", param=RESPONSE_FORMAT,
    )
