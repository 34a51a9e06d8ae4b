"""Extended thinking at the edge: the Messages request's ``thinking`` and earlier turns' thinking blocks
on the way in, the answer's thinking on the way out (whole and streamed), checked with the official
SDK's types and its stream accumulator; and a reasoning model's reasoning text to Chat Completions
clients."""

from __future__ import annotations

import anthropic
import openai
import orjson
import pydantic
import pytest

from services.common.errors import InvalidRequest
from services.edge.anthropic_answer import build_message
from services.edge.convert import to_generate_request
from services.edge.convert_anthropic import messages_to_generate, parse_messages_request
from services.edge.convert_openai import build_chat_completion, parse_chat_request
from services.edge.convert_responses_api import parse_responses_request
from services.edge.streams_anthropic import AnthropicMessageStream
from services.edge.streams_openai import OpenAIChatStream
from services.edge.wire import anthropic_responses as aw
from tests.edge.test_streams import RAW_EVENT, USAGE, anthropic_client, events, serving
from tollgate.router.v1 import router_pb2 as pb

SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4a"
CALL = pb.ToolCall(id="toolu_1", name="now", arguments_json="{}")


def request(**fields: object) -> bytes:
    body = {"model": "m", "max_tokens": 4096, "messages": [{"role": "user", "content": "GCD of 1071 and 462?"}],
            "thinking": {"type": "enabled", "budget_tokens": 2048}} | fields
    return orjson.dumps(body)


def generate(body: bytes) -> pb.GenerateRequest:
    return messages_to_generate(parse_messages_request(body), "req_1", "acct", "m")


def test_thinking_asked_for_goes_to_the_router_as_asked() -> None:
    assert generate(request()).thinking == pb.ThinkingConfig(type="enabled", budget_tokens=2048)
    adaptive = generate(request(thinking={"type": "adaptive", "display": "omitted"}))
    assert adaptive.thinking == pb.ThinkingConfig(type="adaptive", display="omitted")
    assert not generate(request(thinking={"type": "disabled"})).HasField("thinking")
    assert not generate(request(thinking=None)).HasField("thinking")


@pytest.mark.parametrize(("thinking", "max_tokens", "param"), [
    ({"type": "enabled"}, 4096, "thinking.budget_tokens"),
    ({"type": "enabled", "budget_tokens": 1023}, 4096, "thinking.budget_tokens"),
    ({"type": "enabled", "budget_tokens": 4096}, 4096, "thinking.budget_tokens"),  # thinking is part of max_tokens
    ({"type": "sometimes"}, 4096, "thinking.type"),
    ({"type": "adaptive", "display": "full"}, 4096, "thinking.display"),
])
def test_a_thinking_setting_anthropic_refuses_is_refused_in_its_words(thinking, max_tokens, param) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_messages_request(request(thinking=thinking, max_tokens=max_tokens))
    assert refused.value.param == param and refused.value.message.startswith(param)


def test_earlier_thinking_blocks_travel_where_the_model_wrote_them() -> None:
    """In an assistant turn: before its text (offset 0), between text blocks (which are then not
    joined), and after its call (after_calls 1); in a user turn, refused."""
    turns = [
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Use the tool.", "signature": SIGNATURE},
            {"type": "text", "text": "Let me"},
            {"type": "redacted_thinking", "data": REDACTED},
            {"type": "text", "text": "check."},
            {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}},
            {"type": "thinking", "thinking": "Then answer.", "signature": "sig-2"},
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "12:00"}]},
    ]
    [_, assistant, _] = generate(request(messages=turns)).chat.messages
    assert assistant.content == "Let mecheck."
    assert list(assistant.thinking) == [
        pb.ThinkingBlock(thinking="Use the tool.", signature=SIGNATURE, offset=0),
        pb.ThinkingBlock(redacted=REDACTED, offset=6),
        pb.ThinkingBlock(thinking="Then answer.", signature="sig-2", offset=12, after_calls=1),
    ]
    misplaced = [{"role": "user", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}]}]
    with pytest.raises(InvalidRequest) as refused:
        parse_messages_request(request(messages=misplaced))
    assert refused.value.param == "messages.0.content.0"


def test_the_whole_answer_lists_thinking_where_the_model_wrote_it() -> None:
    finish = pb.Finish(finish_reason="tool_calls", usage=USAGE, tool_calls=[CALL], thinking=[
        pb.ThinkingBlock(thinking="Plan.", signature=SIGNATURE), pb.ThinkingBlock(redacted=REDACTED, offset=4),
        pb.ThinkingBlock(thinking="More.", signature="sig-2", offset=9, after_calls=1),
    ])
    message = build_message("req_1", "m", "Let me check", finish)
    parsed = anthropic.types.Message.model_validate(message.model_dump())
    assert [(b.type, getattr(b, "text", None)) for b in parsed.content] == [
        ("thinking", None), ("text", "Let "), ("redacted_thinking", None), ("text", "me check"),
        ("tool_use", None), ("thinking", None)]
    assert parsed.content[0].signature == SIGNATURE  # type: ignore[union-attr]
    only_thinking = build_message("req_1", "m", "", pb.Finish(finish_reason="length", usage=USAGE, thinking=[
        pb.ThinkingBlock(thinking="Long thought", signature=SIGNATURE)]))
    assert [b.type for b in only_thinking.content] == ["thinking"]  # cut while thinking: no empty text


THOUGHTS = ["Euclid: 1071 = 2 × 462 + 147", "\n462 = 3 × 147 + 21", "\nSo 21."]


def thinking_then_text(stream: AnthropicMessageStream, finish: pb.Finish) -> bytes:
    """What the router sends for the recorded thinking answer: the block opening empty, its pieces, its
    signature; a redacted block; then the text (with the last thinking piece, as one read brings it)."""
    body = stream.thinking([pb.ThinkingDelta(index=0)])
    body += stream.thinking([pb.ThinkingDelta(index=0, thinking=t) for t in THOUGHTS[:2]])
    last = [pb.ThinkingDelta(index=0, thinking=THOUGHTS[2]), pb.ThinkingDelta(index=0, signature=SIGNATURE),
            pb.ThinkingDelta(index=1, redacted=REDACTED)]
    body += stream.thinking(last) + stream.delta("The GCD")
    return body + stream.delta(" is 21.") + stream.finish(finish)


def test_a_thinking_stream_opens_each_block_as_it_comes_and_the_sdk_rebuilds_it() -> None:
    body = thinking_then_text(AnthropicMessageStream("req_ab12", "m", thinking=True),
                              pb.Finish(finish_reason="stop", usage=USAGE))
    evs = events(body)
    for name, data in evs:
        payload = orjson.loads(data)
        if name != "ping":
            RAW_EVENT.validate_python(payload)
        pydantic.TypeAdapter(aw.StreamEvent).validate_python(payload)
    starts = [orjson.loads(d)["content_block"] for n, d in evs if n == "content_block_start"]
    assert starts == [{"type": "thinking", "thinking": "", "signature": ""},
                      {"type": "redacted_thinking", "data": REDACTED}, {"type": "text", "text": ""}]
    assert [n for n, _ in evs].count("content_block_stop") == 3
    with serving(body) as http, anthropic_client(http).messages.stream(
        model="m", max_tokens=4096, messages=[{"role": "user", "content": "hi"}],
        thinking={"type": "enabled", "budget_tokens": 2048},
    ) as sdk_stream:
        thought = [e.thinking for e in sdk_stream if e.type == "thinking"]
        final = sdk_stream.get_final_message()
    assert thought == THOUGHTS
    assert [b.type for b in final.content] == ["thinking", "redacted_thinking", "text"]
    first, redacted, text = final.content
    assert (first.thinking, first.signature) == ("".join(THOUGHTS), SIGNATURE)  # type: ignore[union-attr]
    assert redacted.data == REDACTED and text.text == "The GCD is 21."  # type: ignore[union-attr]


def test_a_thinking_stream_opens_no_block_before_its_first_piece() -> None:
    """A keep-alive while the model thinks is the message start and a ping; a model that chose not to
    think (adaptive) gets its text block at index 0, and one that thinks then calls a tool gets the
    call's block after the thinking."""
    stream = AnthropicMessageStream("req_ab12", "m", thinking=True)
    opening = stream.keep_alive()
    assert [n for n, _ in events(opening)] == ["message_start", "ping"]
    body = opening + stream.delta("Hi.") + stream.finish(pb.Finish(finish_reason="stop", usage=USAGE))
    with serving(body) as http, anthropic_client(http).messages.stream(
        model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
    ) as sdk_stream:
        final = sdk_stream.get_final_message()
    assert [(b.type, b.text) for b in final.content] == [("text", "Hi.")]  # type: ignore[union-attr]

    stream = AnthropicMessageStream("req_ab12", "m", thinking=True)
    body = stream.thinking([pb.ThinkingDelta(index=0, thinking="Use it."), pb.ThinkingDelta(index=0, signature="s")])
    body += stream.tool_calls([pb.ToolCallDelta(index=0, id="toolu_1", name="now", arguments="{}")])
    body += stream.finish(pb.Finish(finish_reason="tool_calls", usage=USAGE, tool_calls=[CALL]))
    indexes = [(orjson.loads(d)["index"], orjson.loads(d)["content_block"]["type"])
               for n, d in events(body) if n == "content_block_start"]
    assert indexes == [(0, "thinking"), (1, "tool_use")]
    with serving(body) as http, anthropic_client(http).messages.stream(
        model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
    ) as sdk_stream:
        final = sdk_stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use"]


def test_a_reasoning_models_reasoning_streams_to_chat_clients_in_the_reasoning_field() -> None:
    stream = OpenAIChatStream("req_ab12", "m", include_usage=True)
    body = stream.thinking([pb.ThinkingDelta(index=0, thinking="17 × 20 = 340"), pb.ThinkingDelta(index=0)])
    body += stream.thinking([pb.ThinkingDelta(index=0, thinking=", so 391.")]) + stream.delta("391")
    body += stream.finish(pb.Finish(finish_reason="stop", usage=USAGE))
    with serving(body) as http, openai.OpenAI(api_key="k", base_url="http://edge/v1", http_client=http,
                                              max_retries=0) as client:
        chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "17×23?"}],
                                                     stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert [(d.model_extra or {}).get("reasoning") for d in deltas if (d.model_extra or {}).get("reasoning")] == [
        "17 × 20 = 340", ", so 391."]
    assert "".join(d.content or "" for d in deltas) == "391"

    whole = build_chat_completion("req_ab12", "m", 1, "391", pb.Finish(
        finish_reason="stop", usage=USAGE, thinking=[pb.ThinkingBlock(thinking="17 × 20 = 340, so 391.")]))
    message = openai.types.chat.ChatCompletion.model_validate(whole.model_dump()).choices[0].message
    assert (message.content, (message.model_extra or {}).get("reasoning")) == ("391", "17 × 20 = 340, so 391.")
    plain = build_chat_completion("req_ab12", "m", 1, "391", pb.Finish(finish_reason="stop", usage=USAGE))
    assert "reasoning" not in orjson.loads(plain.model_dump_json())["choices"][0]["message"]


def test_the_openai_apis_ask_for_reasoning_and_an_earlier_answers_reasoning_is_not_sent_on() -> None:
    body = orjson.dumps({"model": "m", "messages": [
        {"role": "user", "content": "17×23?"},
        {"role": "assistant", "content": "391", "reasoning_content": "17 × 20 = 340, so 391."},
        {"role": "assistant", "content": "Sure.", "reasoning": "Again."},
        {"role": "user", "content": "And 17×24?"}]})
    chat = to_generate_request(parse_chat_request(body), "req_1", "acct", "m", default_max_tokens=16)
    assert chat.accepts_reasoning and "340" not in str(chat) and "Again" not in str(chat)
    messages = to_generate_request(parse_messages_request(request()), "req_1", "acct", "m", default_max_tokens=16)
    assert not messages.accepts_reasoning  # the Messages API has no place for unsigned reasoning
    responses = to_generate_request(parse_responses_request(b'{"model": "m", "input": "hi"}'), "req_1", "acct", "m",
                                    default_max_tokens=16)
    assert responses.accepts_reasoning  # as reasoning items
