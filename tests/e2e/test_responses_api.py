"""The OpenAI Responses API (``POST /v1/responses``) through the whole path with the official SDK: text
and function calls from each kind of backend, whole and streamed alike; a conversation of earlier
calls and their outputs reaches the provider as the chat it means; what cannot be served is a 400 in
OpenAI's format with nothing forwarded; the request is metered as ``openai.responses``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai
import pytest

from tests.e2e.conftest import TRITON_MODEL, Stack, usage_events

WEATHER_ARGS = {"location": "Paris, France", "unit": "celsius"}
TOOL: Any = {"type": "function", "name": "get_weather", "description": "Current weather", "strict": False,
             "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}


@pytest.mark.parametrize("model", ["oa-ok", "an-ok"])
async def test_text_comes_back_whole_and_streamed_alike(oa: openai.AsyncOpenAI, stack: Stack, model: str) -> None:
    whole = await oa.responses.create(model=stack.model(model), input="Hello", instructions="Be brief.")
    async with oa.responses.stream(model=stack.model(model), input="Hello", instructions="Be brief.") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert whole.status == final.status == "completed"
    assert whole.output_text and whole.output_text == final.output_text == "".join(deltas)
    assert len(deltas) > 1  # as the provider wrote it, not whole at the end
    assert whole.usage is not None and final.usage is not None and whole.usage.output_tokens > 0
    assert whole.usage.model_dump() == final.usage.model_dump()
    assert whole.instructions == "Be brief." and whole.id.startswith("resp_")


async def test_a_short_limit_on_triton_ends_incomplete(oa: openai.AsyncOpenAI) -> None:
    whole = await oa.responses.create(model=TRITON_MODEL, input="Count to ten", max_output_tokens=3)
    assert whole.status == "incomplete" and whole.incomplete_details is not None
    assert whole.incomplete_details.reason == "max_output_tokens"
    assert whole.usage is not None and whole.usage.output_tokens == 3 and whole.usage.input_tokens > 0
    stream = await oa.responses.create(model=TRITON_MODEL, input="Count to ten", max_output_tokens=3, stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.incomplete"


@pytest.mark.parametrize(("model", "call_id"), [
    ("oa-tool-calls", "call_Jx4Pq7ZbN2mW8vR1tY6sK3dL"), ("an-tool-use", "toolu_01T1x1fJ34qAmk2tNTrN7Up6"),
])
async def test_function_calls_come_back_as_items(oa: openai.AsyncOpenAI, stack: Stack, model: str, call_id: str) -> None:
    ask = "What is the weather in Paris?"
    whole = await oa.responses.create(model=stack.model(model), input=ask, tools=[TOOL])
    async with oa.responses.stream(model=stack.model(model), input=ask, tools=[TOOL]) as stream:
        pieces = [e async for e in stream if e.type == "response.function_call_arguments.delta"]
        final = await stream.get_final_response()
    assert len(pieces) > 2  # the arguments as the model wrote them
    for response in (whole, final):
        [call] = [item for item in response.output if item.type == "function_call"]
        assert (call.call_id, call.name) == (call_id, "get_weather")
        assert json.loads(call.arguments) == WEATHER_ARGS


async def test_earlier_calls_and_their_outputs_reach_the_provider_as_chat(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    marker = uuid.uuid4().hex
    first = await oa.responses.create(model=stack.model("oa-tool-calls"), input=f"Weather? {marker}", tools=[TOOL])
    [call] = [item for item in first.output if item.type == "function_call"]
    conversation: Any = [{"role": "user", "content": f"Weather? {marker}"}, *first.output,  # sent back as they came
                         {"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"}]
    answer = await oa.responses.create(model=stack.model("oa-ok"), input=conversation, tools=[TOOL],
                                       instructions="Answer briefly.")
    assert answer.output_text
    [sent] = [r["body"] for r in stack.upstream.requests_for(f"ok:{stack.model('oa-ok')}") if marker in str(r["body"])]
    assert sent["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": f"Weather? {marker}"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.call_id, "type": "function", "function": {"name": "get_weather", "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "18C, sunny"},
    ]
    assert sent["tools"][0]["function"]["name"] == "get_weather"


async def test_what_cannot_be_served_is_refused_in_openais_format(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    before = len(stack.upstream.requests_for(f"ok:{stack.model('oa-ok')}"))
    with pytest.raises(openai.BadRequestError) as refused:
        await oa.responses.create(model=stack.model("oa-ok"), input="Hi", previous_response_id="resp_123")
    assert refused.value.param == "previous_response_id" and refused.value.code == "unsupported_value"
    with pytest.raises(openai.BadRequestError) as refused:
        await oa.responses.create(model=stack.model("oa-ok"), input="Hi", tools=[{"type": "web_search"}])
    assert refused.value.param == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as refused:
        await oa.responses.create(model=stack.model("oa-ok"), input="Hi", max_output_tokens=5000)
    assert refused.value.param == "max_output_tokens"
    with pytest.raises(openai.NotFoundError):
        await oa.responses.create(model="no-such-model", input="Hi")
    assert len(stack.upstream.requests_for(f"ok:{stack.model('oa-ok')}")) == before


async def test_a_response_is_metered_as_the_responses_api(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    raw = await oa.responses.with_raw_response.create(model=stack.model("oa-ok"), input="Hello")
    response = raw.parse()
    request_id = raw.headers["x-request-id"]
    [event] = (await usage_events(stack, {request_id}))[request_id]
    assert (event.api, event.status, event.streamed) == ("openai.responses", "ok", False)
    assert response.usage is not None
    assert event.tokens.output == response.usage.output_tokens
    assert event.tokens.input + event.tokens.cached_input + event.tokens.cache_write == response.usage.input_tokens
