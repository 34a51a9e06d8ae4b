"""Structured outputs through the whole path with both official SDKs: an OpenAI client's
``response_format`` JSON schema reaches a Claude model as ``output_config.format``, an Anthropic
client's ``output_config.format`` reaches an OpenAI-compatible server as a strict ``json_schema``, the
JSON answer comes back as the provider wrote it, and what a backend cannot honour is a 400 naming the
parameter the client sent, with nothing forwarded."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.conftest import TRITON_MODEL, Stack

SCHEMA: Any = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
               "required": ["city", "country"], "additionalProperties": False}
ASK: Any = [{"role": "user", "content": "Where is the Eiffel Tower?"}]


def sent_to(stack: Stack, scenario: str, model: str, marker: str) -> dict[str, Any]:
    [request] = [r for r in stack.upstream.requests_for(f"{scenario}:{stack.model(model)}")
                 if marker in json.dumps(r["body"])]
    body: dict[str, Any] = request["body"]
    return body


async def test_an_openai_clients_json_schema_reaches_claude_as_structured_outputs(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    marker = uuid.uuid4().hex
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA, "strict": True}}
    whole = await oa.chat.completions.create(model=stack.model("an-structured"), response_format=response_format,
                                             messages=[{"role": "user", "content": f"{marker} Eiffel Tower?"}])
    assert json.loads(whole.choices[0].message.content or "") == {"city": "Paris", "country": "France"}
    body = sent_to(stack, "structured", "an-structured", marker)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "response_format" not in body


async def test_an_anthropic_clients_output_format_is_served_by_claude_and_by_openai_servers(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    marker = uuid.uuid4().hex
    config: Any = {"format": {"type": "json_schema", "schema": SCHEMA}}
    ask: Any = [{"role": "user", "content": f"{marker} Eiffel Tower?"}]
    async with claude.messages.stream(model=stack.model("an-structured"), max_tokens=64, messages=ask,
                                      output_config=config) as stream:
        message = await stream.get_final_message()
    assert message.content[0].type == "text"
    assert json.loads(message.content[0].text) == {"city": "Paris", "country": "France"}
    assert sent_to(stack, "structured", "an-structured", marker)["output_config"] == config
    await claude.messages.create(model=stack.model("oa-ok"), max_tokens=64, messages=ask, output_config=config)
    assert sent_to(stack, "ok", "oa-ok", marker)["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA, "strict": True}}
    counted = await claude.messages.count_tokens(model=stack.model("an-ok"), messages=ask, output_config=config)
    assert counted.input_tokens > 0  # the count a structured request will be billed at is askable


async def test_what_a_backend_cannot_honour_is_refused_by_the_clients_name(
    oa: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    marker = uuid.uuid4().hex
    ask: Any = [{"role": "user", "content": marker}]
    with pytest.raises(openai.BadRequestError) as refused:  # JSON of any shape: Claude has no such mode
        await oa.chat.completions.create(model=stack.model("an-ok"), messages=ask,
                                         response_format={"type": "json_object"})
    assert refused.value.param == "response_format"
    with pytest.raises(anthropic.BadRequestError) as said:  # Triton has no structured outputs
        await claude.messages.create(model=TRITON_MODEL, max_tokens=8, messages=ask,
                                     output_config={"format": {"type": "json_schema", "schema": SCHEMA}})
    assert "output_config.format" in said.value.message and said.value.body["error"]["type"] == (  # type: ignore[index]
        "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError):  # effort is not served: refused, not dropped
        await claude.messages.create(model=stack.model("an-ok"), max_tokens=8, messages=ask,
                                     output_config={"effort": "low"})
    assert not [r for r in stack.upstream.stats()["requests"] if marker in json.dumps(r["body"])]
