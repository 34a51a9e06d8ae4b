"""``reasoning_details`` in Chat Completions: a Claude model's thinking blocks, signatures kept, in
whole answers and streamed pieces (read by the OpenAI SDK's own types), and sent back as blocks."""

from __future__ import annotations

import json
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from services.edge.convert_openai import build_chat_completion, chat_to_generate, parse_chat_request
from services.edge.convert_responses_api import parse_responses_request
from services.edge.reasoning_details import decoded_detail, encoded_block
from services.edge.streams_openai import OpenAIChatStream
from tollgate.router.v1 import router_pb2

SIGNED = router_pb2.ThinkingBlock(thinking="Use Euclid.", signature="sig-1")
REDACTED = router_pb2.ThinkingBlock(redacted="opaque")


def test_a_whole_answer_carries_each_block_and_the_joined_text() -> None:
    finish = router_pb2.Finish(finish_reason="stop", thinking=[SIGNED, REDACTED])
    body = build_chat_completion("req_1", "claude", 1, "21.", finish).model_dump(mode="json")
    message = ChatCompletion.model_validate(body).choices[0].message
    assert (message.model_extra or {})["reasoning"] == "Use Euclid."
    assert (message.model_extra or {})["reasoning_details"] == [
        {"type": "reasoning.text", "index": 0, "text": "Use Euclid.", "signature": "sig-1",
         "format": "anthropic-claude-v1"},
        {"type": "reasoning.encrypted", "data": "opaque", "format": "anthropic-claude-v1", "index": 1},
    ]
    plain = build_chat_completion("req_2", "m", 1, "hi", router_pb2.Finish(finish_reason="stop"))
    assert "reasoning_details" not in plain.model_dump(mode="json")["choices"][0]["message"]


def _chunks(raw: bytes) -> list[ChatCompletionChunk]:
    return [ChatCompletionChunk.model_validate(json.loads(line.removeprefix(b"data: ")))
            for line in raw.split(b"\n") if line.startswith(b"data: {")]


def test_each_streamed_piece_is_a_chunk_of_its_block() -> None:
    stream = OpenAIChatStream("req_1", "claude", include_usage=False)
    pieces = [router_pb2.ThinkingDelta(index=0, thinking="Use "), router_pb2.ThinkingDelta(index=0, thinking="Euclid."),
              router_pb2.ThinkingDelta(index=0, signature="sig-1"), router_pb2.ThinkingDelta(index=1, redacted="opaque")]
    deltas = [c.choices[0].delta for c in _chunks(stream.thinking(pieces)) if c.choices]
    extras: list[dict[str, Any]] = [d.model_extra or {} for d in deltas if d.model_extra]
    assert [e.get("reasoning") for e in extras] == ["Use ", "Euclid.", None, None]
    assert [e["reasoning_details"] for e in extras] == [
        [{"type": "reasoning.text", "index": 0, "text": "Use "}],
        [{"type": "reasoning.text", "index": 0, "text": "Euclid."}],
        [{"type": "reasoning.text", "index": 0, "signature": "sig-1", "format": "anthropic-claude-v1"}],
        [{"type": "reasoning.encrypted", "data": "opaque", "format": "anthropic-claude-v1", "index": 1}],
    ]


def test_blocks_sent_back_go_to_the_router_joined_and_only_where_a_provider_takes_them() -> None:
    """Streamed pieces sent back as they came join by index; unsigned reasoning (a self-hosted model's)
    is not sent on; fields of OpenRouter's entries Tollgate does not write are ignored."""
    details = [
        {"type": "reasoning.text", "index": 0, "text": "Use "},
        {"type": "reasoning.text", "index": 0, "text": "Euclid."},
        {"type": "reasoning.text", "index": 0, "signature": "sig-1", "format": "anthropic-claude-v1", "id": "r1"},
        {"type": "reasoning.encrypted", "index": 1, "data": "opaque"},
        {"type": "reasoning.text", "index": 2, "text": "unsigned musing"},
        {"type": "reasoning.summary", "index": 3, "summary": "short"},
    ]
    body = {"model": "claude", "messages": [
        {"role": "user", "content": "GCD?"},
        {"role": "assistant", "content": "21.", "reasoning": "Use Euclid.", "reasoning_details": details},
        {"role": "user", "content": "And?"}]}
    generate = chat_to_generate(parse_chat_request(json.dumps(body).encode()), "req", "acct", "claude",
                                default_max_tokens=64)
    assistant = generate.chat.messages[1]
    assert list(assistant.thinking) == [
        router_pb2.ThinkingBlock(thinking="Use Euclid.", signature="sig-1"), router_pb2.ThinkingBlock(redacted="opaque")]
    assert assistant.content == "21."


def test_a_block_survives_encrypted_content_and_nothing_else_is_read_from_it() -> None:
    signed = encoded_block("Use Euclid.", "sig-1", "")
    redacted = encoded_block("", "", "opaque")
    assert signed and redacted and encoded_block("unsigned musing", "", "") is None
    assert decoded_detail(signed) == {"type": "reasoning.text", "text": "Use Euclid.", "signature": "sig-1"}
    assert decoded_detail(redacted) == {"type": "reasoning.encrypted", "data": "opaque"}
    for foreign in ("gAAAAABo-openai-encrypted", "tg1.not*base64", "tg1." + "W10=", None, 5):  # "W10=" is []
        assert decoded_detail(foreign) is None


def test_a_responses_tool_loop_sent_back_keeps_its_blocks_calls_and_results() -> None:
    """Reasoning items go with the assistant turn after them (here one that only called a tool), and
    every other item keeps its place: the call, then its result."""
    sealed = encoded_block("Call gcd.", "sig-1", "")
    body = {"model": "claude", "input": [
        {"role": "user", "content": "GCD of 1071 and 462?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": sealed},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAAAB-openai-own"},
        {"type": "function_call", "call_id": "toolu_1", "name": "gcd", "arguments": "{\"a\":1071,\"b\":462}"},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "21"},
    ]}
    chat = parse_responses_request(json.dumps(body).encode())
    generate = chat_to_generate(chat, "req", "acct", "claude", default_max_tokens=64)
    assert [m.role for m in generate.chat.messages] == ["user", "assistant", "tool"]
    assistant, tool = generate.chat.messages[1], generate.chat.messages[2]
    assert list(assistant.thinking) == [router_pb2.ThinkingBlock(thinking="Call gcd.", signature="sig-1")]
    assert json.loads(generate.provider_options_json)["assistant_tool_calls"]["1"][0]["id"] == "toolu_1"
    assert (tool.tool_call_id, tool.content) == ("toolu_1", "21")


def test_reasoning_after_a_call_stays_with_its_turn_and_the_calls_result_stays_too() -> None:
    sealed = encoded_block("Check it.", "sig-2", "")
    body = {"model": "claude", "input": [
        {"role": "user", "content": "GCD?"},
        {"type": "function_call", "call_id": "toolu_1", "name": "gcd", "arguments": "{}"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": sealed},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "21"},
    ]}
    generate = chat_to_generate(parse_responses_request(json.dumps(body).encode()), "req", "acct", "claude",
                                default_max_tokens=64)
    assert [m.role for m in generate.chat.messages] == ["user", "assistant", "tool"]
    assert [b.signature for b in generate.chat.messages[1].thinking] == ["sig-2"]
    assert generate.chat.messages[2].content == "21"
