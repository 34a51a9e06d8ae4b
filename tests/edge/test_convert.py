"""Wire → router and router → wire: good requests become the expected GenerateRequest; built responses
validate with the official SDKs' types; a failed Finish is an error, never a clean answer."""

from __future__ import annotations

import json
from typing import Any

import anthropic.types
import openai.types
import openai.types.chat
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.errors import InvalidRequest, Overloaded, TollgateError, UpstreamError, UpstreamTimeout
from services.edge.admission.reservation import input_token_bound
from services.edge.anthropic_answer import stop_reason
from services.edge.convert import (
    build_chat_completion,
    build_completion,
    build_message,
    finish_error,
    parse_chat_request,
    parse_completion_request,
    parse_messages_request,
    requested_max_tokens,
    to_generate_request,
)
from services.edge.convert_openai import chat_finish_reason, completion_finish_reason
from services.edge.end_user import end_user_id, prompt_cache_key_id
from services.edge.finish import response_id
from tollgate.router.v1 import router_pb2 as pb

IDS = {"request_id": "req_0123abcd", "account_id": "acct_1", "model_id": "catalog/model-1"}
USAGE = pb.Usage(input_tokens=10, cached_input_tokens=4, cache_write_tokens=2, output_tokens=7, reasoning_tokens=3)


def convert(req: Any, default_max_tokens: int = 256) -> pb.GenerateRequest:
    return to_generate_request(req, IDS["request_id"], IDS["account_id"], IDS["model_id"],
                               default_max_tokens=default_max_tokens)


def options(gen: pb.GenerateRequest) -> dict[str, Any]:
    return orjson.loads(gen.provider_options_json) if gen.provider_options_json else {}


def msg(role: str, content: str, name: str = "", tool_call_id: str = "") -> pb.ChatMessage:
    return pb.ChatMessage(role=role, content=content, name=name, tool_call_id=tool_call_id)


def test_chat_request_becomes_generate_request() -> None:
    req = parse_chat_request(orjson.dumps({
        "model": "alias-of-model-1",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "ann"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"x\":1}"}}]},
            {"role": "tool", "content": [{"type": "text", "text": "42"}], "tool_call_id": "call_1"},
        ],
        "max_tokens": 50, "temperature": 0.5, "top_p": 0.75, "stop": "END", "seed": -1,
        "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "parallel_tool_calls": False, "response_format": {"type": "json_object"},
        "presence_penalty": 0.5, "frequency_penalty": 0.25, "user": "end-user-7", "metadata": {"k": "v"},
        "prompt_cache_key": "support-bot-v3",
    }))
    gen = convert(req)
    assert gen.request_id == IDS["request_id"] and gen.account_id == IDS["account_id"]
    assert gen.model == "catalog/model-1"  # the resolved id, not what the client typed
    assert list(gen.chat.messages) == [
        msg("system", "Be brief."), msg("user", "a\nb", name="ann"), msg("assistant", ""),
        msg("tool", "42", tool_call_id="call_1"),
    ]
    assert gen.sampling == pb.SamplingParams(max_tokens=50, temperature=0.5, top_p=0.75, seed=2**64 - 1,
                                             stop=["END"])
    assert options(gen) == {
        "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "parallel_tool_calls": False, "response_format": {"type": "json_object"},
        "presence_penalty": 0.5, "frequency_penalty": 0.25,
        "assistant_tool_calls": {"2": [{"id": "call_1", "type": "function",
                                        "function": {"name": "get", "arguments": "{\"x\":1}"}}]},
    }
    sent = gen.SerializeToString().decode(errors="ignore")
    assert "end-user-7" not in sent and "support-bot-v3" not in sent  # never sent on as is
    assert gen.end_user == end_user_id(IDS["account_id"], "end-user-7")  # but as the per-account hash
    assert gen.prompt_cache_key == prompt_cache_key_id(IDS["account_id"], "support-bot-v3")


def test_chat_without_limits_uses_the_default_and_sets_no_optional_sampling() -> None:
    req = parse_chat_request(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["", "x"]}')
    assert requested_max_tokens(req) is None
    gen = convert(req, default_max_tokens=4096)
    assert gen.sampling.max_tokens == 4096
    for field in ("temperature", "top_p", "top_k", "seed"):
        assert not gen.sampling.HasField(field)
    assert list(gen.sampling.stop) == ["x"]  # an empty stop string would end every answer at once
    assert gen.provider_options_json == ""


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    req = parse_chat_request(b'{"model":"m","messages":[{"role":"user","content":"hi"}],'
                             b'"max_tokens":10,"max_completion_tokens":20}')
    assert requested_max_tokens(req) == 20
    assert convert(req).sampling.max_tokens == 20


def test_response_format_json_schema_keeps_its_schema_key() -> None:
    req = parse_chat_request(orjson.dumps({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"},
                                                                   "strict": True}},
    }))
    assert options(convert(req))["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": True}}


def test_completion_request_becomes_generate_request() -> None:
    req = parse_completion_request(orjson.dumps({
        "model": "m", "prompt": ["Once upon a time"], "max_tokens": 9, "stop": ["\n"], "seed": 3,
        "temperature": 0, "presence_penalty": 1,
    }))
    gen = convert(req)
    assert gen.WhichOneof("input") == "prompt" and gen.prompt == "Once upon a time"
    assert gen.sampling == pb.SamplingParams(max_tokens=9, temperature=0, seed=3, stop=["\n"])
    assert options(gen) == {"presence_penalty": 1}


@pytest.mark.parametrize("prompt", [[791, 6864, 315], [[791, 6864, 315]]], ids=["ids", "one array of ids"])
def test_a_token_id_prompt_goes_as_ids_with_echo_and_logprobs(prompt: list[Any]) -> None:
    req = parse_completion_request(orjson.dumps({"model": "m", "prompt": prompt, "max_tokens": 1,
                                                 "echo": True, "logprobs": 0}))
    gen = convert(req)
    assert gen.WhichOneof("input") == "prompt_tokens" and list(gen.prompt_tokens.ids) == [791, 6864, 315]
    assert options(gen) == {"echo": True, "logprobs": 0}  # 0 is asked for: the chosen tokens' own
    assert input_token_bound(gen) == input_token_bound(pb.GenerateRequest(
        provider_options_json=gen.provider_options_json)) + 3  # token ids are their own count
    plain = convert(parse_completion_request(orjson.dumps({"model": "m", "prompt": "hi", "echo": False})))
    assert options(plain) == {} and plain.prompt == "hi"


def test_anthropic_request_becomes_generate_request() -> None:
    req = parse_messages_request(orjson.dumps({
        "model": "claude-ish", "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "user", "content": [{"type": "text", "text": "In Paris."}]},  # merged into one turn
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                              {"type": "tool_use", "id": "tu_1", "name": "weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1",
                                          "content": [{"type": "text", "text": "sunny"}]},
                                         {"type": "text", "text": "Tomorrow?"}]},
        ],
        "stop_sequences": ["\n\nHuman:", ""], "temperature": 0.3, "top_p": 0.5, "top_k": 40,
        "tools": [{"name": "weather", "description": "By city", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u-1"},
    }))
    assert requested_max_tokens(req) == 64
    gen = convert(req)
    assert gen.model == "catalog/model-1"
    assert gen.end_user == end_user_id(IDS["account_id"], "u-1")  # metadata.user_id, hashed
    assert list(gen.chat.messages) == [
        msg("system", "Be brief.\nBe kind."), msg("user", "Weather?\nIn Paris."), msg("assistant", "Checking."),
        msg("tool", "sunny", tool_call_id="tu_1"), msg("user", "Tomorrow?"),
    ]
    assert gen.sampling == pb.SamplingParams(max_tokens=64, temperature=0.3, top_p=0.5, top_k=40,
                                             stop=["\n\nHuman:"])
    assert options(gen) == {
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"},
                                                    "description": "By city"}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}}, "parallel_tool_calls": False,
        "assistant_tool_calls": {"2": [{"id": "tu_1", "type": "function",
                                        "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
    }


@pytest.mark.parametrize(("choice", "expected"), [("auto", "auto"), ("any", "required"), ("none", "none")])
def test_anthropic_tool_choice_maps_to_openai_vocabulary(choice: str, expected: str) -> None:
    req = parse_messages_request(orjson.dumps({
        "model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "t", "input_schema": {}}], "tool_choice": {"type": choice},
    }))
    assert options(convert(req))["tool_choice"] == expected


def test_an_anthropic_output_format_travels_as_a_strict_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = parse_messages_request(orjson.dumps({
        "model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }))
    assert options(convert(req))["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}
    for config in ({"effort": "low"}, {"format": {"type": "json_object"}}, {"format": {"type": "json_schema"}}):
        with pytest.raises(InvalidRequest):
            parse_messages_request(orjson.dumps({"model": "m", "max_tokens": 1, "output_config": config,
                                                 "messages": [{"role": "user", "content": "x"}]}))


def test_cache_breakpoints_survive_the_flattening_as_offsets() -> None:
    """Each cache_control becomes an offset where its block ends in the turn's joined text (code
    points: 'Dé' is 2); a tool result's and a tool call's at the end of their turn."""
    eph, hour = {"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}
    req = parse_messages_request(orjson.dumps({
        "model": "m", "max_tokens": 1,
        "system": [{"type": "text", "text": "Rules.", "cache_control": hour}, {"type": "text", "text": "Today."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Dé", "cache_control": eph},
                                         {"type": "text", "text": "Q?"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "t", "input": {},
                                               "cache_control": eph}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a",
                                          "content": [{"type": "text", "text": "42", "cache_control": eph}]}]},
        ],
        "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": eph}],
    }))
    gen = convert(req)
    marks = [[(b.offset, b.ttl) for b in m.cache_breakpoints] for m in gen.chat.messages]
    assert [m.content for m in gen.chat.messages] == ["Rules.\nToday.", "Dé\nQ?", "", "42"]
    assert marks == [[(6, "1h")], [(2, "")], [(0, "")], [(2, "")]]
    assert options(gen)["tools"][0]["cache_control"] == eph
    plain = convert(parse_messages_request(orjson.dumps(
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]})))
    assert not plain.chat.messages[0].cache_breakpoints


def test_a_top_level_cache_control_marks_the_last_block_once() -> None:
    """Automatic caching: the end of the last turn (its last image, when it ends with one), unless the
    client marked that block itself."""
    def last_turn(content: Any, **fields: Any) -> pb.ChatMessage:
        answer = [{"type": "text", "text": "b"}, {"type": "tool_use", "id": "t1", "name": "t", "input": {}}]
        return convert(parse_messages_request(orjson.dumps({
            "model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "a"},
                                                        {"role": "assistant", "content": answer},
                                                        {"role": "user", "content": content}], **fields,
        }))).chat.messages[-1]
    auto = {"cache_control": {"type": "ephemeral", "ttl": "1h"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "42"}
    assert [(b.offset, b.ttl) for b in last_turn([result, {"type": "text", "text": "Question?"}], **auto)
            .cache_breakpoints] == [(9, "1h")]
    marked = last_turn([result, {"type": "text", "text": "Q", "cache_control": {"type": "ephemeral"}}], **auto)
    assert [(b.offset, b.ttl) for b in marked.cache_breakpoints] == [(1, "")]  # the client's own, kept
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    ends_with_image = last_turn([result, {"type": "text", "text": "Look:"}, image], **auto)
    assert not ends_with_image.cache_breakpoints
    assert (ends_with_image.images[0].cached, ends_with_image.images[0].cache_ttl) == (True, "1h")
    only_result = last_turn([result], **auto)
    assert only_result.role == "tool" and [b.offset for b in only_result.cache_breakpoints] == [2]
    assert not last_turn([result]).cache_breakpoints  # none asked, none added


def test_a_failed_tool_result_keeps_its_flag() -> None:
    req = parse_messages_request(orjson.dumps({"model": "m", "max_tokens": 1, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "t", "input": {}},
                                          {"type": "tool_use", "id": "b", "name": "t", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "boom", "is_error": True},
                                     {"type": "tool_result", "tool_use_id": "b", "content": "fine"}]},
    ]}))
    assert [(m.tool_call_id, m.tool_failed) for m in convert(req).chat.messages[2:]] == [("a", True), ("b", False)]


def test_user_turn_of_only_tool_results_adds_no_empty_user_message() -> None:
    req = parse_messages_request(orjson.dumps({"model": "m", "max_tokens": 1, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "t", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a"}]},
    ]}))
    assert [m.role for m in convert(req).chat.messages] == ["user", "assistant", "tool"]


def finish(reason: str = "stop", **fields: Any) -> pb.Finish:
    return pb.Finish(finish_reason=reason, usage=USAGE, deployment_id="d1", provider="p", **fields)


@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls"])
def test_built_chat_completion_validates_with_the_openai_sdk(reason: str) -> None:
    built = build_chat_completion("req_0123abcd", "model-1", 1_700_000_000, "Hello!", finish(reason))
    sdk = openai.types.chat.ChatCompletion.model_validate(orjson.loads(built.model_dump_json()))
    assert sdk.id == "chatcmpl-0123abcd"
    assert sdk.choices[0].message.content == "Hello!"
    assert sdk.choices[0].finish_reason == reason
    assert sdk.usage is not None
    assert (sdk.usage.prompt_tokens, sdk.usage.completion_tokens, sdk.usage.total_tokens) == (16, 7, 23)
    assert sdk.usage.prompt_tokens_details and sdk.usage.prompt_tokens_details.cached_tokens == 4
    assert sdk.usage.completion_tokens_details and sdk.usage.completion_tokens_details.reasoning_tokens == 3


CALL = pb.ToolCall(id="call_a1", name="get_weather", arguments_json='{"location": "Paris"}')


def test_built_chat_completion_carries_tool_calls_and_no_content_when_only_tools_were_called() -> None:
    built = build_chat_completion("req_1", "model-1", 1, "", finish("tool_calls", tool_calls=[CALL]))
    body = built.model_dump(mode="json", exclude_none=False)  # as the edge sends it
    sdk = openai.types.chat.ChatCompletion.model_validate(body)
    message = sdk.choices[0].message
    assert message.content is None and sdk.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []] == [
        ("call_a1", "get_weather", '{"location": "Paris"}')]
    plain = build_chat_completion("req_1", "model-1", 1, "Hi", finish()).model_dump(mode="json", exclude_none=False)
    assert "tool_calls" not in plain["choices"][0]["message"]  # no key at all, as OpenAI answers


def test_built_message_carries_tool_use_blocks() -> None:
    built = build_message("req_1", "model-1", "", finish("tool_calls", tool_calls=[CALL]))
    sdk = anthropic.types.Message.model_validate(orjson.loads(built.model_dump_json()))
    assert sdk.stop_reason == "tool_use"
    assert [(b.type, b.id, b.name, b.input) for b in sdk.content] == [  # type: ignore[union-attr]
        ("tool_use", "call_a1", "get_weather", {"location": "Paris"})]
    with_text = build_message("req_1", "model-1", "Checking.", finish("tool_calls", tool_calls=[CALL]))
    assert [b.type for b in with_text.content] == ["text", "tool_use"]


@pytest.mark.parametrize("arguments", ['{"unclosed": ', "[1, 2]", '"text"'])
def test_tool_arguments_that_are_not_an_object_cannot_be_a_tool_use_block(arguments: str) -> None:
    bad = finish("tool_calls", tool_calls=[pb.ToolCall(id="c", name="f", arguments_json=arguments)])
    with pytest.raises(UpstreamError, match="not a JSON object"):
        build_message("req_1", "model-1", "", bad)
    built = build_chat_completion("req_1", "model-1", 1, "", bad)  # OpenAI's format carries them as text
    assert built.choices[0].message.tool_calls is not None
    assert built.choices[0].message.tool_calls[0].function.arguments == arguments


def test_built_completion_validates_with_the_openai_sdk() -> None:
    built = build_completion("req_0123abcd", "model-1", 1_700_000_000, " there", finish("length"))
    sdk = openai.types.Completion.model_validate(orjson.loads(built.model_dump_json()))
    assert sdk.id == "cmpl-0123abcd" and sdk.choices[0].text == " there"
    assert sdk.choices[0].finish_reason == "length"


def test_a_completions_logprobs_are_the_legacy_lists_the_sdk_reads() -> None:
    entries = [{"token": "The", "logprob": None, "top_logprobs": None, "text_offset": 0},
               {"token": " cat", "logprob": -2.5, "top_logprobs": {" cat": -2.5, " dog": -1.0}, "text_offset": 3}]
    built = build_completion("req_0123abcd", "model-1", 1, "The cat", finish("length"), orjson.dumps(entries).decode())
    # an echoed prompt's first token has no logprob: null, as OpenAI and vLLM send it (the SDK's type says
    # float, and its client reads answers without validating them)
    assert orjson.loads(built.model_dump_json())["choices"][0]["logprobs"] == {
        "tokens": ["The", " cat"], "token_logprobs": [None, -2.5], "top_logprobs": [None, {" cat": -2.5, " dog": -1.0}],
        "text_offset": [0, 3]}
    generated = build_completion("req_1", "m", 1, " cat", finish("length"), orjson.dumps(entries[1:]).decode())
    sdk = openai.types.Completion.model_validate(orjson.loads(generated.model_dump_json()))
    assert sdk.choices[0].logprobs is not None and sdk.choices[0].logprobs.top_logprobs == [{" cat": -2.5, " dog": -1.0}]
    assert build_completion("req_1", "m", 1, "x", finish("stop")).choices[0].logprobs is None


@pytest.mark.parametrize(("reason", "expected"), [("stop", "end_turn"), ("length", "max_tokens"),
                                                  ("tool_calls", "tool_use"), ("stop_sequence", "stop_sequence")])
def test_built_message_validates_with_the_anthropic_sdk(reason: str, expected: str) -> None:
    built = build_message("req_0123abcd", "model-1", "Bonjour", finish(reason))
    sdk = anthropic.types.Message.model_validate(orjson.loads(built.model_dump_json()))
    assert sdk.id == "msg_0123abcd" and sdk.stop_reason == expected
    assert [b.type for b in sdk.content] == ["text"] and sdk.content[0].text == "Bonjour"  # type: ignore[union-attr]
    assert (sdk.usage.input_tokens, sdk.usage.output_tokens) == (10, 7)
    assert (sdk.usage.cache_read_input_tokens, sdk.usage.cache_creation_input_tokens) == (4, 2)


@pytest.mark.parametrize("builder", ["chat", "completion", "message"])
@pytest.mark.parametrize(("fin", "error_type"), [
    (finish("error", error_code="overloaded", error_message="backend overloaded"), Overloaded),
    (finish("error", error_code="timeout", error_message="too slow"), UpstreamTimeout),
    (finish("error", error_code="weird", error_message=""), UpstreamError),
    (finish("cancelled"), UpstreamError),
    (finish("some_future_reason"), UpstreamError),
    (finish(""), UpstreamError),
])
def test_failed_finish_raises_instead_of_building_an_answer(
    builder: str, fin: pb.Finish, error_type: type[TollgateError]
) -> None:
    with pytest.raises(error_type) as info:
        if builder == "chat":
            build_chat_completion("req_1", "m", 1, "partial", fin)
        elif builder == "completion":
            build_completion("req_1", "m", 1, "partial", fin)
        else:
            build_message("req_1", "m", "partial", fin)
    assert info.value.message  # never empty, even when the router gave no message
    assert not isinstance(info.value, InvalidRequest)


def test_finish_error_keeps_the_router_code_and_message() -> None:
    err = finish_error(finish("error", error_code="overloaded", error_message="All backends are busy"))
    assert isinstance(err, Overloaded)
    assert err.to_openai()["error"] == {"message": "All backends are busy", "type": "overloaded_error",
                                        "param": None, "code": "overloaded"}
    assert err.to_anthropic()["error"]["type"] == "overloaded_error"
    assert finish_error(finish("stop")) is None


def test_finish_reason_mappings() -> None:
    assert [chat_finish_reason(r) for r in ("stop", "length", "tool_calls", "content_filter", "stop_sequence")] == [
        "stop", "length", "tool_calls", "content_filter", "stop"]
    assert completion_finish_reason("tool_calls") == "stop"
    assert [stop_reason(r) for r in ("stop", "length", "tool_calls", "stop_sequence", "content_filter")] == [
        "end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal"]


def test_response_ids_share_the_request_id() -> None:
    assert response_id("chatcmpl-", "req_ab12") == "chatcmpl-ab12"
    assert response_id("msg_", "other") == "msg_other"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**64, -(2**63) - 1, 10**30, 2**31, -1, 0])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]) | JSON
PART_TYPES = st.sampled_from(["text", "image_url", "tool_use", "tool_result", "refusal", "image"]) | JSON
PART = st.fixed_dictionaries({"type": PART_TYPES}, optional={
    "text": JSON, "id": JSON, "name": JSON, "input": JSON, "tool_use_id": JSON, "content": JSON, "refusal": JSON,
})
MESSAGE = st.fixed_dictionaries({"role": ROLES}, optional={
    "content": st.one_of(JSON, st.lists(PART, max_size=3)), "tool_call_id": JSON, "tool_calls": JSON, "name": JSON,
})
FIELDS = ["model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "seed", "n",
          "stream", "stream_options", "tools", "tool_choice", "response_format", "presence_penalty", "logprobs",
          "prompt", "echo", "suffix", "system", "stop_sequences", "metadata", "thinking", "logit_bias", "unknown"]


def dumps_leniently(obj: Any) -> bytes:
    """Like a careless client: NaN, Infinity, huge integers, lone surrogates (escaped) all go out."""
    return json.dumps(obj, allow_nan=True).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    api=st.sampled_from(["chat", "completion", "messages"]),
    messages=st.lists(MESSAGE, min_size=1, max_size=3),
    fields=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4),
)
def test_no_input_crashes_the_boundary(api: str, messages: list[Any], fields: dict[str, Any]) -> None:
    base: dict[str, Any] = {"model": "m", "messages": messages, "max_tokens": 5}
    if api == "completion":
        base = {"model": "m", "prompt": "p"}
    parse = {"chat": parse_chat_request, "completion": parse_completion_request,
             "messages": parse_messages_request}[api]
    try:
        req = parse(dumps_leniently({**base, **fields}))
    except InvalidRequest as exc:
        assert exc.message and exc.http_status == 400
        return
    gen = convert(req)
    gen.SerializeToString()
    options(gen)
