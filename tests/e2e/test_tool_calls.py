"""Tool calling through the whole path with the official SDKs: the calls a provider makes come back to
the client in its API's shape (streamed or not, OpenAI or Anthropic, whichever provider made them; streamed,
piece by piece as the provider wrote them), and
a conversation that carries earlier calls and their results reaches the provider in the provider's shape.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.conftest import Stack

WEATHER_ARGS = {"location": "Paris, France", "unit": "celsius"}  # what both recorded answers call with
OPENAI_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}},
}}
ANTHROPIC_TOOL: Any = {"name": "get_weather", "description": "Current weather",
                       "input_schema": OPENAI_TOOL["function"]["parameters"]}
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.mark.parametrize(("model", "call_id", "text"), [
    ("oa-tool-calls", "call_Jx4Pq7ZbN2mW8vR1tY6sK3dL", None),  # an OpenAI provider's call
    ("an-tool-use", "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "I'll check the weather in Paris for you."),  # Anthropic's
])
@pytest.mark.parametrize("n", [1, 2])  # with n = 2, each choice's calls are its own, streamed by its index
async def test_openai_sdk_gets_the_providers_tool_calls(
    oa: openai.AsyncOpenAI, stack: Stack, model: str, call_id: str, text: str | None, n: int
) -> None:
    whole = await oa.chat.completions.create(model=stack.model(model), messages=ASK, tools=[OPENAI_TOOL], n=n)
    async with oa.chat.completions.stream(model=stack.model(model), messages=ASK, tools=[OPENAI_TOOL], n=n) as stream:
        pieces = [e async for e in stream if e.type == "tool_calls.function.arguments.delta"]
        streamed = await stream.get_final_completion()
    assert len(pieces) > 2 * n  # the arguments as the model wrote them, not whole at the end
    for completion in (whole, streamed):
        assert [choice.index for choice in completion.choices] == list(range(n))
        for choice in completion.choices:
            assert choice.finish_reason == "tool_calls"
            assert (choice.message.content or None) == text
            [call] = choice.message.tool_calls or []
            assert (call.id, call.type, call.function.name) == (call_id, "function", "get_weather")
            assert json.loads(call.function.arguments) == WEATHER_ARGS


@pytest.mark.parametrize(("model", "call_id", "text"), [
    ("an-tool-use", "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "I'll check the weather in Paris for you."),
    ("oa-tool-calls", "call_Jx4Pq7ZbN2mW8vR1tY6sK3dL", None),
])
async def test_anthropic_sdk_gets_the_providers_tool_use(
    claude: anthropic.AsyncAnthropic, stack: Stack, model: str, call_id: str, text: str | None
) -> None:
    whole = await claude.messages.create(model=stack.model(model), max_tokens=200, messages=ASK, tools=[ANTHROPIC_TOOL])
    async with claude.messages.stream(
        model=stack.model(model), max_tokens=200, messages=ASK, tools=[ANTHROPIC_TOOL]
    ) as stream:
        pieces = [e async for e in stream if e.type == "input_json"]
        streamed = await stream.get_final_message()
    assert len(pieces) > 2  # the input as the model wrote it, not whole at the end
    for message in (whole, streamed):
        assert message.stop_reason == "tool_use"
        texts = [b.text for b in message.content if b.type == "text" and b.text]
        assert texts == ([text] if text else [])
        [use] = [b for b in message.content if b.type == "tool_use"]
        assert (use.id, use.name, use.input) == (call_id, "get_weather", WEATHER_ARGS)


async def test_an_openai_tool_conversation_reaches_an_anthropic_provider_in_its_shape(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    marker = uuid.uuid4().hex
    await oa.chat.completions.create(model=stack.model("an-ok"), tools=[OPENAI_TOOL], tool_choice="required", messages=[
        {"role": "user", "content": f"Weather in Paris? {marker}"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps(WEATHER_ARGS)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    ])
    [sent] = [r["body"] for r in stack.upstream.requests_for(f"ok:{stack.model('an-ok')}")
              if marker in json.dumps(r["body"])]
    assert sent["tools"] == [ANTHROPIC_TOOL] and sent["tool_choice"] == {"type": "any"}
    assert sent["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": WEATHER_ARGS}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"}]},
    ]


async def test_an_anthropic_tool_conversation_reaches_an_openai_provider_in_its_shape(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    marker = uuid.uuid4().hex
    await claude.messages.create(model=stack.model("oa-ok"), max_tokens=200, tools=[ANTHROPIC_TOOL], messages=[
        {"role": "user", "content": f"Weather in Paris? {marker}"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": WEATHER_ARGS}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, sunny"}]},
    ])
    [sent] = [r["body"] for r in stack.upstream.requests_for(f"ok:{stack.model('oa-ok')}")
              if marker in json.dumps(r["body"])]
    assert sent["tools"] == [OPENAI_TOOL]
    assistant, tool = sent["messages"][1:]
    assert assistant["role"] == "assistant" and assistant["content"] == "Checking."
    [call] = assistant["tool_calls"]
    assert (call["id"], call["function"]["name"]) == ("toolu_1", "get_weather")
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    assert tool == {"role": "tool", "content": "18C, sunny", "tool_call_id": "toolu_1"}
    assert "assistant_tool_calls" not in sent
