"""The Responses API at the edge: a ``/v1/responses`` body becomes the chat request it means (errors
naming the client's ``input`` items), and the answer comes back as a Response, whole and streamed,
checked with the official SDK's types and its stream helper."""

from __future__ import annotations

from typing import Any

import openai
import openai.types.responses as rt
import orjson
import pydantic
import pytest

from services.common.errors import InvalidRequest, Overloaded
from services.edge.convert import max_tokens_param, requested_max_tokens, to_generate_request
from services.edge.convert_responses_api import ResponsesChat, build_response, parse_responses_request
from services.edge.streams_responses_api import ResponsesStream
from tests.edge.test_streams import events, serving
from tollgate.router.v1 import router_pb2 as pb

USAGE = pb.Usage(input_tokens=11, cached_input_tokens=5, cache_write_tokens=1, output_tokens=6, reasoning_tokens=2)
CALL = pb.ToolCall(id="call_1", name="get_weather", arguments_json='{"city": "Paris"}')
STREAM_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(rt.ResponseStreamEvent)


def parse(**fields: Any) -> ResponsesChat:
    return parse_responses_request(orjson.dumps({"model": "m", "input": "Hi"} | fields))


def generate(**fields: Any) -> pb.GenerateRequest:
    return to_generate_request(parse(**fields), "req_ab12", "acct", "m", default_max_tokens=100)


def test_a_conversation_becomes_the_chat_it_means() -> None:
    request = generate(
        instructions="Be brief.", max_output_tokens=64, temperature=0.3, user="u-1",
        input=[
            {"role": "developer", "content": "Use metric units."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Weather in Paris?"},
                {"type": "input_image", "image_url": "https://example.com/paris.jpg", "detail": "low"}]},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "content": [
                {"type": "output_text", "text": "Let me check.", "annotations": []}]},
            {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": '{"city":"Paris"}',
             "status": "completed", "a_field_added_later": True},  # sent back as a response gave it: taken
            {"type": "function_call_output", "call_id": "call_9", "output": "18C"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            {"role": "user", "content": "And tomorrow?"},
        ],
        tools=[{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": True}],
        tool_choice={"type": "function", "name": "get_weather"},
        text={"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}, "verbosity": "low"},
        reasoning={"effort": "low", "summary": "auto"},
    )
    turns = [(m.role, m.content, m.tool_call_id) for m in request.chat.messages]
    assert turns == [("system", "Be brief.", ""), ("system", "Use metric units.", ""),
                     ("user", "Weather in Paris?", ""), ("assistant", "Let me check.", ""),
                     ("tool", "18C", "call_9"), ("user", "And tomorrow?", "")]
    assert [(i.url, i.detail) for i in request.chat.messages[2].images] == [("https://example.com/paris.jpg", "low")]
    assert request.sampling.max_tokens == 64 and round(request.sampling.temperature, 3) == 0.3
    assert request.end_user.startswith("tg-")
    options = orjson.loads(request.provider_options_json)
    assert options["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object"}, "strict": True}}]
    assert options["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert options["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "w", "schema": {"type": "object"}}}
    assert (options["verbosity"], options["reasoning_effort"]) == ("low", "low")
    assert options["assistant_tool_calls"] == {"3": [{"id": "call_9", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    parsed = parse(max_output_tokens=64)
    assert (requested_max_tokens(parsed), max_tokens_param(parsed)) == (64, "max_output_tokens")


@pytest.mark.parametrize(("fields", "param"), [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"background": True}, "background"),
    ({"truncation": "auto"}, "truncation"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]}, "input[0].content[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[0].file_id"),
    ({"input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": "hi"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}]}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x"}]}]},
     "input[0].content[0].image_url.url"),
    ({"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "https://x.io/a.png"}]}]},
     "input[0].content"),
    ({"input": []}, "input"),
    ({"input": 3}, "input"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"stream_options": {"include_obfuscation": False}}, "stream_options"),
    ({"temperature": 3}, "temperature"),
    ({"store": True, "unknown": 1}, "unknown"),
])
def test_what_cannot_be_served_is_a_400_naming_the_clients_parameter(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse(**fields)
    assert refused.value.param == param, refused.value.message


def test_the_whole_answer_is_a_response_the_sdk_reads() -> None:
    req = parse(instructions="Be brief.", tools=[{"type": "function", "name": "get_weather"}], metadata={"k": "v"})
    finish = pb.Finish(finish_reason="tool_calls", usage=USAGE, tool_calls=[CALL])
    body = build_response("req_ab12", "m", 1700000000, "Let me check.", finish, req.responses).model_dump()
    response = rt.Response.model_validate(body)
    assert response.id == "resp_ab12" and response.status == "completed" and response.store is False
    assert response.output_text == "Let me check."
    [message, call] = response.output
    assert message.type == "message" and call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == ("call_1", "get_weather", '{"city": "Paris"}')
    usage = response.usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (17, 6, 23)
    assert (usage.input_tokens_details.cached_tokens, usage.output_tokens_details.reasoning_tokens) == (5, 2)
    assert (response.instructions, response.metadata, response.tools[0].name) == ("Be brief.", {"k": "v"}, "get_weather")  # type: ignore[union-attr]
    cut = build_response("req_ab12", "m", 1, "Partial", pb.Finish(finish_reason="length", usage=USAGE), req.responses)
    assert (cut.status, cut.incomplete_details and cut.incomplete_details.reason) == ("incomplete", "max_output_tokens")
    with pytest.raises(Overloaded):
        build_response("req_ab12", "m", 1, "x", pb.Finish(finish_reason="error", error_code="overloaded"), req.responses)


def streamed(stream: ResponsesStream, finish: pb.Finish) -> bytes:
    """Text in three deltas, then a call whose arguments arrive in two pieces (the rest in the Finish)."""
    body = stream.keep_alive() + stream.delta("Let") + stream.delta(" me") + stream.delta(" check.")
    body += stream.tool_calls([pb.ToolCallDelta(index=0, id="call_1", name="get_weather", arguments='{"city"')])
    body += stream.keep_alive() + stream.tool_calls([pb.ToolCallDelta(index=0, arguments=': "Par')])
    return body + stream.finish(finish)


def test_every_stream_event_validates_and_the_sdk_rebuilds_the_response() -> None:
    req = parse(stream=True, tools=[{"type": "function", "name": "get_weather"}])
    body = streamed(ResponsesStream("req_ab12", "m", req.responses, created=1),
                    pb.Finish(finish_reason="tool_calls", usage=USAGE, tool_calls=[CALL]))
    evs = events(body)
    assert [orjson.loads(d)["sequence_number"] for _, d in evs] == list(range(len(evs)))
    for name, data in evs:
        payload = orjson.loads(data)
        assert payload["type"] == name
        STREAM_EVENT.validate_python(payload)
    names = [name for name, _ in evs]
    assert names[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert names[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    with serving(body) as http, openai.OpenAI(api_key="k", base_url="http://edge/v1", http_client=http,
                                              max_retries=0) as client, client.responses.stream(
            model="m", input="hi", tools=[{"type": "function", "name": "get_weather", "parameters": {},
                                          "strict": False}]) as sdk_stream:
        deltas = [e.delta for e in sdk_stream if e.type == "response.output_text.delta"]
        final = sdk_stream.get_final_response()
    assert deltas == ["Let", " me", " check."]
    assert final.output_text == "Let me check." and final.status == "completed"
    [_, call] = final.output
    assert call.type == "function_call" and call.arguments == '{"city": "Paris"}'
    assert final.usage is not None and final.usage.total_tokens == 23


def test_a_cut_answer_ends_incomplete_and_a_failure_with_an_error_the_sdk_raises() -> None:
    req = parse(stream=True)
    stream = ResponsesStream("req_ab12", "m", req.responses, created=1)
    body = stream.delta("Part") + stream.finish(pb.Finish(finish_reason="length", usage=USAGE))
    last = orjson.loads(events(body)[-1][1])
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["output"][0]["status"] == "incomplete"
    STREAM_EVENT.validate_python(last)

    stream = ResponsesStream("req_ab12", "m", req.responses, created=1)
    body = stream.delta("Part") + stream.finish(pb.Finish(finish_reason="error", error_code="overloaded",
                                                          error_message="Backend overloaded"))
    name, data = events(body)[-1]
    assert name == "error" and stream.done
    STREAM_EVENT.validate_python(orjson.loads(data))
    with serving(body) as http, openai.OpenAI(api_key="k", base_url="http://edge/v1", http_client=http,
                                              max_retries=0) as client:
        with pytest.raises(openai.APIError, match="Backend overloaded"):
            list(client.responses.create(model="m", input="hi", stream=True))


def test_a_reasoning_models_reasoning_is_a_reasoning_item_whole_and_streamed() -> None:
    """vLLM's reasoning text before the answer, and more after a call: reasoning items in the model's
    order, streamed as reasoning_text deltas the SDK validates and rebuilds."""
    req = parse(stream=True, tools=[{"type": "function", "name": "get_weather"}])
    stream = ResponsesStream("req_ab12", "m", req.responses, created=1)
    body = stream.thinking([pb.ThinkingDelta(index=0, thinking="Need"), pb.ThinkingDelta(index=0, thinking=" weather.")])
    body += stream.delta("Checking.") + stream.tool_calls([pb.ToolCallDelta(index=0, id="call_1", name="get_weather",
                                                                             arguments='{"city": "Paris"}')])
    body += stream.thinking([pb.ThinkingDelta(index=1, thinking="Then answer.")])
    thinking = [pb.ThinkingBlock(thinking="Need weather."), pb.ThinkingBlock(thinking="Then answer.", offset=9,
                                                                            after_calls=1)]
    finish = pb.Finish(finish_reason="tool_calls", usage=USAGE, tool_calls=[CALL], thinking=thinking)
    body += stream.finish(finish)
    for _, data in events(body):
        STREAM_EVENT.validate_python(orjson.loads(data))
    deltas = [orjson.loads(d)["delta"] for n, d in events(body) if n == "response.reasoning_text.delta"]
    assert deltas == ["Need", " weather.", "Then answer."]
    with serving(body) as http, openai.OpenAI(api_key="k", base_url="http://edge/v1", http_client=http,
                                              max_retries=0) as client, client.responses.stream(
            model="m", input="hi", tools=[{"type": "function", "name": "get_weather", "parameters": {},
                                          "strict": False}]) as sdk_stream:
        final = sdk_stream.get_final_response()
    whole = rt.Response.model_validate(build_response("req_ab12", "m", 1, "Checking.", finish, req.responses).model_dump())
    for response in (final, whole):
        assert [item.type for item in response.output] == ["reasoning", "message", "function_call", "reasoning"]
        first, last = response.output[0], response.output[3]
        assert first.type == "reasoning" and first.content and first.content[0].text == "Need weather."
        assert last.type == "reasoning" and last.content and last.content[0].text == "Then answer."
    assert [i.id for i in final.output] == [i.id for i in whole.output]


ENTRIES = [{"token": "Par", "logprob": -0.25, "bytes": [80, 97, 114],
            "top_logprobs": [{"token": "Par", "logprob": -0.25, "bytes": [80, 97, 114]}]},
           {"token": "is", "logprob": -0.5, "bytes": [105, 115], "top_logprobs": []}]


@pytest.mark.parametrize(("fields", "asked"), [
    ({"include": ["message.output_text.logprobs"]}, {"logprobs": True}),
    ({"include": ["message.output_text.logprobs"], "top_logprobs": 3}, {"logprobs": True, "top_logprobs": 3}),
    ({"top_logprobs": 2}, {"logprobs": True, "top_logprobs": 2}),  # asking how many alternatives asks for them
    ({"include": ["reasoning.encrypted_content"]}, {}),
])
def test_logprobs_are_asked_for_by_include_or_top_logprobs(fields: dict[str, Any], asked: dict[str, Any]) -> None:
    options = orjson.loads(generate(**fields).provider_options_json or "{}")
    assert {k: v for k, v in options.items() if k in ("logprobs", "top_logprobs")} == asked


def test_the_output_texts_logprobs_whole_and_streamed_are_the_routers_entries() -> None:
    req = parse(include=["message.output_text.logprobs"], top_logprobs=1)
    finish = pb.Finish(finish_reason="stop", usage=USAGE)
    whole = rt.Response.model_validate(build_response(
        "req_ab12", "m", 1, "Paris", finish, req.responses, orjson.dumps(ENTRIES).decode()).model_dump())
    assert whole.top_logprobs == 1
    [message] = whole.output
    assert message.type == "message" and message.content[0].type == "output_text"
    assert [lp.model_dump() for lp in message.content[0].logprobs or []] == ENTRIES
    stream = ResponsesStream("req_ab12", "m", req.responses, created=1)
    body = stream.delta("Par") + stream.logprobs(orjson.dumps(ENTRIES[:1]).decode())
    body += stream.delta("is") + stream.logprobs(orjson.dumps(ENTRIES[1:]).decode()) + stream.finish(finish)
    for _, data in events(body):
        STREAM_EVENT.validate_python(orjson.loads(data))
    with serving(body) as http, openai.OpenAI(api_key="k", base_url="http://edge/v1", http_client=http,
                                              max_retries=0) as client, client.responses.stream(
            model="m", input="hi") as sdk_stream:
        deltas = [e for e in sdk_stream if e.type == "response.output_text.delta"]
        done = sdk_stream.get_final_response()
    assert "".join(e.delta for e in deltas) == "Paris"
    assert [lp.token for e in deltas for lp in e.logprobs] == ["Par", "is"]
    [streamed] = done.output
    assert streamed.type == "message" and streamed.content[0].type == "output_text"
    assert [lp.model_dump() for lp in streamed.content[0].logprobs or []] == ENTRIES
