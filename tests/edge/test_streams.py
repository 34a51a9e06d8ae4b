"""Streaming encoders: every chunk validates with the official SDKs' types, the SDKs' own stream
helpers rebuild the full text and usage, and a failed Finish ends the stream with an error event —
never with ``[DONE]`` or ``message_stop`` (DESIGN promise 7)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import anthropic.types
import httpx2
import openai
import openai.types
import openai.types.chat
import orjson
import pydantic
import pytest
from anthropic.types.shared import ErrorResponse

from services.common.errors import UpstreamError
from services.edge import sse
from services.edge.convert import (
    AnthropicMessageStream,
    EventStream,
    OpenAIChatStream,
    OpenAICompletionStream,
)
from services.edge.wire import anthropic_responses as aw
from services.edge.wire import openai_responses as ow
from tollgate.router.v1 import router_pb2 as pb

TEXT = ["Hel", "lo, ", "\"wörld\"", "\n", "😀 \u2028 </script>", "", "!"]
USAGE = pb.Usage(input_tokens=11, cached_input_tokens=5, cache_write_tokens=1, output_tokens=6, reasoning_tokens=2)
CLEAN = pb.Finish(finish_reason="stop", usage=USAGE)
FAILED = pb.Finish(finish_reason="error", usage=USAGE, error_code="overloaded", error_message="Backend overloaded")
RAW_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)


def events(body: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event, checking the framing on the way; comments are skipped."""
    assert body.endswith(b"\n\n")
    out = []
    for raw in body.decode().split("\n\n")[:-1]:
        name, data = None, []
        for line in raw.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field:
                assert field == "data", line
                data.append(value)
        if name is not None or data:
            out.append((name, "\n".join(data)))
    return out


Stream = EventStream  # the three encoders below must satisfy it (mypy checks the factories)


def run(stream: Stream, texts: list[str], finish: pb.Finish) -> bytes:
    return b"".join(stream.delta(t) for t in texts) + stream.finish(finish)


@contextmanager
def serving(body: bytes) -> Iterator[httpx2.Client]:
    def reply(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with httpx2.Client(transport=httpx2.MockTransport(reply)) as client:
        yield client


def openai_client(http: httpx2.Client) -> openai.OpenAI:
    return openai.OpenAI(api_key="k", base_url="http://edge/v1", http_client=http, max_retries=0)


def anthropic_client(http: httpx2.Client) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="k", base_url="http://edge", http_client=http, max_retries=0)


def test_sse_framing() -> None:
    assert sse.data(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert sse.event("ping", b'{"type":"ping"}') == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert sse.data(b"one\ntwo") == b"data: one\ndata: two\n\n"  # never a bare line that breaks the stream
    assert sse.json_event("x", {"k": "v"}) == b'event: x\ndata: {"k":"v"}\n\n'
    assert sse.DONE == b"data: [DONE]\n\n"
    assert sse.comment("keep-alive") == b": keep-alive\n\n"


@pytest.mark.parametrize("include_usage", [True, False])
def test_every_chat_chunk_validates_with_the_sdk_type(include_usage: bool) -> None:
    stream = OpenAIChatStream("req_ab12", "model-1", include_usage=include_usage, created=1_700_000_000)
    evs = events(run(stream, TEXT, CLEAN))
    assert evs[-1] == (None, "[DONE]")
    chunks = [orjson.loads(data) for _, data in evs[:-1]]
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
        ow.ChatCompletionChunk.model_validate(chunk)
        assert chunk["id"] == "chatcmpl-ab12" and chunk["created"] == 1_700_000_000
        assert ("usage" in chunk) is include_usage  # OpenAI sends usage: null on every chunk when asked
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert "".join(filter(None, content)) == "".join(TEXT)
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "stop"
    usage_chunks = [c for c in chunks if not c["choices"]]
    if include_usage:
        assert usage_chunks == [chunks[-1]]
        assert chunks[-1]["usage"]["prompt_tokens"] == 17 and chunks[-1]["usage"]["completion_tokens"] == 6
    else:
        assert usage_chunks == []
    assert stream.done


def test_openai_sdk_stream_helper_rebuilds_text_and_usage() -> None:
    stream = OpenAIChatStream("req_ab12", "model-1", include_usage=True)
    with serving(run(stream, TEXT, CLEAN)) as http, openai_client(http).chat.completions.stream(
        model="model-1", messages=[{"role": "user", "content": "hi"}], stream_options={"include_usage": True},
    ) as sdk_stream:
        final = sdk_stream.get_final_completion()
    assert final.choices[0].message.content == "".join(TEXT)
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None and final.usage.total_tokens == 23
    assert final.usage.prompt_tokens_details and final.usage.prompt_tokens_details.cached_tokens == 5


def test_every_completion_chunk_validates_and_the_sdk_reads_the_stream() -> None:
    stream = OpenAICompletionStream("req_ab12", "model-1", include_usage=True, created=5)
    body = run(stream, TEXT, pb.Finish(finish_reason="length", usage=USAGE))
    evs = events(body)
    assert evs[-1] == (None, "[DONE]")
    chunks = [orjson.loads(data) for _, data in evs[:-1]]
    for chunk in chunks:
        ow.CompletionChunk.model_validate(chunk)
    # The SDK's Completion type declares finish_reason non-null; the API (and the SDK's stream parser,
    # which does not validate) has null on every chunk but the last, so only those two are held to it.
    openai.types.Completion.model_validate(chunks[-2])
    openai.types.Completion.model_validate(chunks[-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length" and chunks[-1]["choices"] == []
    with serving(body) as http:
        parts = list(openai_client(http).completions.create(model="model-1", prompt="p", stream=True))
    assert "".join(p.choices[0].text for p in parts if p.choices) == "".join(TEXT)
    assert parts[-1].usage is not None and parts[-1].usage.completion_tokens == 6


def test_a_completions_logprobs_stream_in_chunks_of_their_own_the_sdk_reads() -> None:
    stream = OpenAICompletionStream("req_ab12", "model-1", include_usage=False, created=5)
    first = [{"token": "Hi", "logprob": None, "top_logprobs": None, "text_offset": 0}]
    second = [{"token": "!", "logprob": -0.5, "top_logprobs": {"!": -0.5}, "text_offset": 2}]
    body = (stream.logprobs(orjson.dumps(first).decode()) + stream.delta("Hi")
            + stream.delta("!") + stream.logprobs(orjson.dumps(second).decode())
            + stream.finish(pb.Finish(finish_reason="stop", usage=USAGE)))
    with serving(body) as http:
        parts = list(openai_client(http).completions.create(model="model-1", prompt="p", stream=True))
    assert "".join(p.choices[0].text for p in parts) == "Hi!"
    joined = [lp for p in parts if (lp := p.choices[0].logprobs) is not None]
    assert [t for lp in joined for t in lp.tokens or []] == ["Hi", "!"]
    assert [o for lp in joined for o in lp.text_offset or []] == [0, 2]
    assert [t for lp in joined for t in lp.top_logprobs or []] == [None, {"!": -0.5}]


def test_every_anthropic_event_validates_with_the_sdk_type() -> None:
    stream = AnthropicMessageStream("req_ab12", "model-1", input_tokens=9)
    evs = events(run(stream, TEXT, CLEAN))
    names = [name for name, _ in evs]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    for name, data in evs:
        payload = orjson.loads(data)
        assert payload["type"] == name
        if name != "ping":  # ping is not in the SDK's union; the SDK skips it by event name
            RAW_EVENT.validate_python(payload)
        pydantic.TypeAdapter(aw.StreamEvent).validate_python(payload)
    start = orjson.loads(evs[0][1])
    assert start["message"]["id"] == "msg_ab12" and start["message"]["usage"]["input_tokens"] == 9
    assert stream.done


def read_with_anthropic_sdk(body: bytes) -> anthropic.types.Message:
    """The SDK's stream helper over ``body``: the text it streamed and the message it rebuilt are TEXT."""
    with serving(body) as http, anthropic_client(http).messages.stream(
        model="model-1", max_tokens=6, messages=[{"role": "user", "content": "hi"}],
    ) as sdk_stream:
        streamed = "".join(sdk_stream.text_stream)
        final = sdk_stream.get_final_message()
    assert streamed == "".join(TEXT)
    assert final.content[0].type == "text" and final.content[0].text == "".join(TEXT)
    return final


def test_anthropic_sdk_stream_helper_rebuilds_text_and_usage() -> None:
    stream = AnthropicMessageStream("req_ab12", "model-1")
    final = read_with_anthropic_sdk(run(stream, TEXT, pb.Finish(finish_reason="length", usage=USAGE)))
    assert final.stop_reason == "max_tokens"
    usage = final.usage
    assert (usage.input_tokens, usage.output_tokens) == (11, 6)  # the real totals replace the estimate
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (5, 1)


def test_failed_finish_ends_openai_streams_with_an_error_and_no_done() -> None:
    for stream in (OpenAIChatStream("req_1", "m", include_usage=True), OpenAICompletionStream("req_1", "m",
                                                                                               include_usage=True)):
        body = run(stream, ["partial"], FAILED)
        assert b"[DONE]" not in body and b'"finish_reason":"stop"' not in body
        last = orjson.loads(events(body)[-1][1])
        assert last == {"error": {"message": "Backend overloaded", "type": "overloaded_error", "param": None,
                                  "code": "overloaded"}}
        assert stream.done


def test_openai_sdk_raises_on_the_error_event() -> None:
    body = run(OpenAIChatStream("req_1", "m", include_usage=False), ["partial"], FAILED)
    received = []
    with serving(body) as http, pytest.raises(openai.APIError, match="Backend overloaded"):
        for chunk in openai_client(http).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            received.append(chunk)
    assert received  # the text before the failure did arrive


def test_failed_finish_ends_the_anthropic_stream_with_an_error_event() -> None:
    body = run(AnthropicMessageStream("req_1", "m"), ["partial"], FAILED)
    evs = events(body)
    assert evs[-1][0] == "error"
    assert "message_stop" not in [n for n, _ in evs] and "message_delta" not in [n for n, _ in evs]
    error = ErrorResponse.model_validate(orjson.loads(evs[-1][1]))
    assert error.error.type == "overloaded_error" and error.error.message == "Backend overloaded"
    with serving(body) as http, pytest.raises(anthropic.APIStatusError, match="Backend overloaded"), \
            anthropic_client(http).messages.stream(model="m", max_tokens=5,
                                                   messages=[{"role": "user", "content": "x"}]) as sdk_stream:
        sdk_stream.get_final_message()


@pytest.mark.parametrize("reason", ["cancelled", "", "unknown_reason"])
def test_any_unclean_finish_is_an_error_event(reason: str) -> None:
    fin = pb.Finish(finish_reason=reason, usage=USAGE)
    assert b"[DONE]" not in run(OpenAIChatStream("req_1", "m", include_usage=True), ["x"], fin)
    assert events(run(AnthropicMessageStream("req_1", "m"), ["x"], fin))[-1][0] == "error"


Factory = Callable[[], Stream]
FACTORIES: list[Factory] = [
    lambda: OpenAIChatStream("req_1", "m", include_usage=True),
    lambda: OpenAICompletionStream("req_1", "m", include_usage=True),
    lambda: AnthropicMessageStream("req_1", "m"),
]


@pytest.mark.parametrize("factory", FACTORIES, ids=["chat", "completion", "anthropic"])
def test_streams_open_lazily_and_only_once(factory: Factory) -> None:
    stream = factory()
    assert not stream.started
    first = stream.delta("a")
    assert stream.started and b'"a"' in first
    assert stream.start() == b""  # idempotent: opening bytes go out once
    second = stream.delta("b")
    assert second.count(b"\n\n") == 1 and b'"b"' in second
    assert stream.delta("") == b""


@pytest.mark.parametrize("factory", FACTORIES, ids=["chat", "completion", "anthropic"])
def test_failure_before_any_delta_is_just_the_error_event(factory: Factory) -> None:
    stream = factory()
    body = stream.finish(FAILED)
    assert len(events(body)) == 1 and b"overloaded" in body
    assert stream.error(UpstreamError("stream broke")).count(b"\n\n") == 1


def with_keep_alives(stream: Stream, texts: list[str], finish: pb.Finish) -> bytes:
    """The stream as a thinking model makes it: two keep-alives before the first text, one between
    every two texts."""
    body = stream.keep_alive() + stream.keep_alive()
    for text in texts:
        body += stream.delta(text) + stream.keep_alive()
    return body + stream.finish(finish)


def test_openai_keep_alives_are_comments_the_sdks_skip() -> None:
    chat = OpenAIChatStream("req_ab12", "model-1", include_usage=True)
    assert chat.keep_alive() == b": keep-alive\n\n" and not chat.started  # opens nothing: no chunk yet
    body = with_keep_alives(chat, TEXT, CLEAN)
    assert body.startswith(b": keep-alive\n\n: keep-alive\n\ndata: ")
    with serving(body) as http, openai_client(http).chat.completions.stream(
        model="model-1", messages=[{"role": "user", "content": "hi"}], stream_options={"include_usage": True},
    ) as sdk_stream:
        final = sdk_stream.get_final_completion()
    assert final.choices[0].message.content == "".join(TEXT)
    assert final.usage is not None and final.usage.completion_tokens == 6
    completion = OpenAICompletionStream("req_ab12", "model-1", include_usage=False)
    with serving(with_keep_alives(completion, TEXT, CLEAN)) as http:
        chunks = list(openai_client(http).completions.create(model="model-1", prompt="hi", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "".join(TEXT)


def test_anthropic_keep_alives_open_the_message_then_ping() -> None:
    stream = AnthropicMessageStream("req_ab12", "model-1")
    body = with_keep_alives(stream, TEXT, pb.Finish(finish_reason="stop", usage=USAGE))
    names = [name for name, _ in events(body)]
    assert names[:4] == ["message_start", "content_block_start", "ping", "ping"]  # Anthropic's own opening
    assert names.count("ping") == 2 + len(TEXT) and names[-1] == "message_stop"
    for name, data in events(body):
        assert name == "ping" or RAW_EVENT.validate_python(orjson.loads(data)).type == name
    read_with_anthropic_sdk(body)


@pytest.mark.parametrize("factory", FACTORIES, ids=["chat", "completion", "anthropic"])
def test_a_failure_after_keep_alives_is_still_one_error_event(factory: Factory) -> None:
    stream = factory()
    body = stream.keep_alive() + stream.finish(FAILED)
    assert b"[DONE]" not in body and b"message_stop" not in body
    assert events(body)[-1][0] in (None, "error") and b"overloaded" in events(body)[-1][1].encode()


@pytest.mark.parametrize("factory", FACTORIES, ids=["chat", "completion", "anthropic"])
def test_empty_answer_still_opens_and_closes_cleanly(factory: Factory) -> None:
    body = factory().finish(CLEAN)
    names = [n for n, _ in events(body)]
    assert body.endswith(sse.DONE) or names[-1] == "message_stop"
    if names[0] == "message_start":
        assert names == ["message_start", "content_block_start", "ping", "content_block_stop", "message_delta",
                         "message_stop"]


def test_chat_stream_reports_tool_calls_finish_reason() -> None:
    body = run(OpenAIChatStream("req_1", "m", include_usage=False), [], pb.Finish(finish_reason="tool_calls"))
    final = openai.types.chat.ChatCompletionChunk.model_validate(orjson.loads(events(body)[-2][1]))
    assert final.choices[0].finish_reason == "tool_calls"


CALLS = [pb.ToolCall(id="call_a1", name="get_weather", arguments_json='{"location": "Paris"}'),
         pb.ToolCall(id="call_b2", name="get_time", arguments_json='{"zone": "CET"}')]
TOOL_FINISH = pb.Finish(finish_reason="tool_calls", usage=USAGE, tool_calls=CALLS)


def test_openai_sdk_rebuilds_the_tool_calls_of_a_chat_stream() -> None:
    stream = OpenAIChatStream("req_ab12", "model-1", include_usage=True)
    body = run(stream, ["Let me check."], TOOL_FINISH)
    for _, data in events(body)[:-1]:
        ow.ChatCompletionChunk.model_validate(orjson.loads(data))
    with serving(body) as http, openai_client(http).chat.completions.stream(
        model="model-1", messages=[{"role": "user", "content": "hi"}],
    ) as sdk_stream:
        final = sdk_stream.get_final_completion()
    assert_openai_calls(final)


def assert_openai_calls(final: openai.types.chat.ParsedChatCompletion[None]) -> None:
    """The SDK's rebuilt answer: "Let me check." and the two CALLS, whole."""
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls" and message.content == "Let me check."
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in message.tool_calls or []] == [
        ("call_a1", "function", "get_weather", '{"location": "Paris"}'),
        ("call_b2", "function", "get_time", '{"zone": "CET"}'),
    ]


def assert_anthropic_uses(final: anthropic.types.Message) -> None:
    """The SDK's rebuilt message: a text block "Let me check." and a tool_use block per call of CALLS."""
    text, *uses = final.content
    assert text.type == "text" and text.text == "Let me check."
    assert [(u.type, u.id, u.name, u.input) for u in uses] == [  # type: ignore[union-attr]
        ("tool_use", "call_a1", "get_weather", {"location": "Paris"}),
        ("tool_use", "call_b2", "get_time", {"zone": "CET"}),
    ]


def test_anthropic_sdk_rebuilds_the_tool_use_blocks_of_a_stream() -> None:
    stream = AnthropicMessageStream("req_ab12", "model-1")
    body = run(stream, ["Let me check."], TOOL_FINISH)
    for name, data in events(body):
        payload = orjson.loads(data)
        if name != "ping":
            RAW_EVENT.validate_python(payload)
        pydantic.TypeAdapter(aw.StreamEvent).validate_python(payload)
    with serving(body) as http, anthropic_client(http).messages.stream(
        model="model-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
    ) as sdk_stream:
        final = sdk_stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert_anthropic_uses(final)


def fragments(calls: list[pb.ToolCall], size: int = 5) -> list[pb.ToolCallDelta]:
    """The calls as a provider streams them: id and name first, the arguments ``size`` characters a time."""
    out = []
    for index, call in enumerate(calls):
        out.append(pb.ToolCallDelta(index=index, id=call.id, name=call.name))
        args = call.arguments_json
        out += [pb.ToolCallDelta(index=index, arguments=args[i:i + size]) for i in range(0, len(args), size)]
    return out


def streamed(stream: Stream, text: str, parts: list[pb.ToolCallDelta], finish: pb.Finish) -> bytes:
    """Text, then the fragments two to a router delta, then the Finish."""
    body = stream.delta(text)
    for i in range(0, len(parts), 2):
        body += stream.tool_calls(parts[i:i + 2])
    return body + stream.finish(finish)


def test_openai_tool_calls_stream_as_the_model_writes_them() -> None:
    body = streamed(OpenAIChatStream("req_ab12", "model-1", include_usage=True), "Let me check.",
                    fragments(CALLS), TOOL_FINISH)
    for _, data in events(body)[:-1]:
        ow.ChatCompletionChunk.model_validate(orjson.loads(data))
    with serving(body) as http, openai_client(http).chat.completions.stream(
        model="model-1", messages=[{"role": "user", "content": "hi"}],
    ) as sdk_stream:
        pieces = [e.arguments_delta for e in sdk_stream if e.type == "tool_calls.function.arguments.delta"]
        final = sdk_stream.get_final_completion()
    assert len(pieces) > 4  # piece by piece, not whole at the end
    assert_openai_calls(final)


def test_anthropic_tool_use_blocks_stream_as_the_model_writes_them() -> None:
    body = streamed(AnthropicMessageStream("req_ab12", "model-1"), "Let me check.", fragments(CALLS), TOOL_FINISH)
    for name, data in events(body):
        if name != "ping":
            RAW_EVENT.validate_python(orjson.loads(data))
    names = [name for name, _ in events(body)]
    assert names.count("content_block_start") == 3 and names.count("content_block_stop") == 3
    with serving(body) as http, anthropic_client(http).messages.stream(
        model="model-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
    ) as sdk_stream:
        pieces = [e.partial_json for e in sdk_stream if e.type == "input_json"]
        final = sdk_stream.get_final_message()
    assert len(pieces) > 4
    assert_anthropic_uses(final)


def test_text_after_a_streamed_call_gets_a_block_of_its_own() -> None:
    stream = AnthropicMessageStream("req_ab12", "model-1")
    body = stream.delta("Checking.") + stream.tool_calls(fragments(CALLS[:1])) + stream.delta("Done")
    body += stream.delta(" now.") + stream.finish(pb.Finish(finish_reason="tool_calls", usage=USAGE,
                                                            tool_calls=CALLS[:1]))
    with serving(body) as http, anthropic_client(http).messages.stream(
        model="model-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
    ) as sdk_stream:
        final = sdk_stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "text"]
    assert final.content[2].text == "Done now."  # type: ignore[union-attr]


def test_what_the_fragments_left_out_follows_in_the_finish() -> None:
    """A provider that interleaved its calls: the router stopped streaming mid-call. OpenAI's format
    takes the rest of any call; Anthropic's only of the open block, so it ends with an error."""
    partial = fragments(CALLS)[:3]  # call 0's id and name and its first piece
    body = streamed(OpenAIChatStream("req_1", "m", include_usage=False), "", partial, TOOL_FINISH)
    with serving(body) as http, openai_client(http).chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "hi"}],
    ) as sdk_stream:
        calls = sdk_stream.get_final_completion().choices[0].message.tool_calls or []
    assert [(c.id, c.function.arguments) for c in calls] == [(c.id, c.arguments_json) for c in CALLS]
    closed = fragments(CALLS)[:2] + fragments(CALLS)[6:8]  # call 1 opened while call 0 was unfinished
    stream = AnthropicMessageStream("req_1", "m")
    stream.tool_calls(closed)
    with pytest.raises(UpstreamError, match="out of order"):
        stream.finish(TOOL_FINISH)


def test_arguments_that_are_not_an_object_end_the_anthropic_stream_with_an_error() -> None:
    """Anthropic's tool_use input must be an object; an OpenAI-compatible model may write anything."""
    bad = pb.Finish(finish_reason="tool_calls", usage=USAGE,
                    tool_calls=[pb.ToolCall(id="call_x", name="f", arguments_json='{"unclosed": ')])
    stream = AnthropicMessageStream("req_ab12", "model-1")
    opened = stream.delta("ok")
    with pytest.raises(UpstreamError, match="not a JSON object") as failure:
        stream.finish(bad)  # raised, so the route records the failure and ends the stream with it
    evs = events(opened + stream.error(failure.value))
    assert evs[-1][0] == "error" and "message_stop" not in [name for name, _ in evs]


def test_model_names_and_ids_are_json_escaped() -> None:
    stream = OpenAIChatStream('req_"x', 'we"ird\nmodel', include_usage=False)
    chunk = orjson.loads(events(stream.delta("t"))[1][1])
    assert chunk["model"] == 'we"ird\nmodel' and chunk["id"] == 'chatcmpl-"x'
