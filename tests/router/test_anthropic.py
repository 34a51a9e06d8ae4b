"""AnthropicBackend against the replaying upstream: recorded Messages API traffic on a real socket."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from infra.stack.ports import free_port
from services.common.errors import (
    ContextTooLong,
    InvalidRequest,
    Overloaded,
    UnsupportedByBackend,
    UpstreamError,
    UpstreamTimeout,
)
from services.router.backends import (
    CacheBreakpoint,
    ChatTurn,
    GenerationRequest,
    Image,
    Outcome,
    Sampling,
    ToolCall,
    ToolCallDelta,
)
from services.router.backends.anthropic import AnthropicBackend
from services.router.backends.anthropic_messages import to_messages
from services.router.backends.http import ProviderHTTP, ReadTimeouts
from services.router.backends.provider_errors import UpstreamRateLimited, is_retryable
from services.router.backends.sse import Event
from tests.router.draining import drain
from tests.upstream.harness import UpstreamServer

FIXTURES = Path(__file__).parents[1] / "upstream" / "fixtures" / "anthropic"
KEY_ENV = "TOLLGATE_TEST_ANTHROPIC_KEY"


def recorded(name: str) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """Text deltas, message_start usage and message_delta usage, read straight from the recording."""
    deltas: list[str] = []
    start: dict[str, Any] = {}
    end: dict[str, Any] = {}
    for line in (FIXTURES / f"{name}.sse").read_text().splitlines():
        if not line.startswith("data: "):
            continue
        event = json.loads(line.removeprefix("data: "))
        if event["type"] == "message_start":
            start = event["message"]["usage"]
        elif event["type"] == "message_delta":
            end = event["usage"]
        elif event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
            deltas.append(event["delta"]["text"])
    return deltas, start, end


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "sk-ant-api03-" + uuid.uuid4().hex
    monkeypatch.setenv(KEY_ENV, value)
    return value


def backend(
    upstream: UpstreamServer, http: ProviderHTTP, timeouts: ReadTimeouts = ReadTimeouts(5.0, 5.0)
) -> AnthropicBackend:
    return AnthropicBackend(upstream.anthropic_base_url, KEY_ENV, http, timeouts=timeouts)


def chat(model: str, turns: tuple[ChatTurn, ...] | None = None, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(
        request_id="req-" + uuid.uuid4().hex, upstream_model=model,
        sampling=Sampling(max_tokens=sampling.pop("max_tokens", 256), **sampling),
        messages=turns or (ChatTurn("system", "Be brief."), ChatTurn("user", "Hi there")),
    )


async def test_stream_yields_recorded_deltas_and_cache_usage(upstream, http, key, tag) -> None:
    outcome = Outcome()
    turns = (
        ChatTurn("system", "Be brief."), ChatTurn("user", "Hi"), ChatTurn("user", "there"),
        ChatTurn("assistant", "Hello."), ChatTurn("system", "Answer in English."), ChatTurn("user", "How are you?"),
    )
    request = chat(f"ok:{tag}", turns, temperature=0.5, top_p=0.9, top_k=20, seed=3, stop=("END",))
    got, error = await drain(backend(upstream, http).generate(request, outcome))
    deltas, start, end = recorded("messages-ok")
    assert error is None
    assert got == deltas
    assert outcome.input_tokens == start["input_tokens"]
    assert outcome.cached_input_tokens == start["cache_read_input_tokens"] > 0
    assert outcome.cache_write_tokens == start["cache_creation_input_tokens"] > 0
    assert outcome.output_tokens == end["output_tokens"]
    assert outcome.usage_reported is True
    assert outcome.finish_reason == "stop"

    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["path"] == "/v1/messages"
    assert seen["auth"] is True
    assert {"x-api-key", "anthropic-version"} <= set(seen["headers"])
    assert "authorization" not in seen["headers"]
    body = seen["body"]
    assert body["stream"] is True
    assert body["system"] == "Be brief.\n\nAnswer in English."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "How are you?"},
    ]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["top_k"]) == (256, 0.5, 0.9, 20)
    assert body["stop_sequences"] == ["END"]
    assert "seed" not in body and "stop" not in body and "metadata" not in body


async def test_the_end_user_goes_out_as_metadata_user_id(upstream, http, key, tag) -> None:
    request = replace(chat(f"ok:{tag}"), end_user="tg-0123")
    await drain(backend(upstream, http).generate(request, Outcome()))
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["body"]["metadata"] == {"user_id": "tg-0123"}


async def test_tool_use_finishes_with_tool_calls(upstream, http, key, tag) -> None:
    outcome = Outcome()
    fragments: list[ToolCallDelta] = []
    got, error = await drain(backend(upstream, http).generate(chat(f"tool-use:{tag}"), outcome), outcome, fragments)
    assert error is None
    assert got == recorded("messages-tool-use")[0]
    assert outcome.finish_reason == "tool_calls"
    assert outcome.output_tokens == 89
    assert outcome.tool_calls == [  # rebuilt from the recorded input_json_delta fragments
        ToolCall("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", '{"location": "Paris, France", "unit": "celsius"}')
    ]
    assert (fragments[0].index, fragments[0].id, fragments[0].name) == (0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")
    assert len(fragments) > 2 and "".join(f.arguments for f in fragments) == outcome.tool_calls[0].arguments


def read_in_one(events: list[dict[str, Any]], outcome: Outcome) -> AsyncGenerator[list[str], None]:
    """The adapter reading ``events`` (Anthropic's stream events) that arrived in one network read."""
    async def batches() -> AsyncGenerator[list[Event], None]:
        yield [Event(event=str(e["type"]), data=json.dumps(e)) for e in events]

    return AnthropicBackend("http://unused", None, cast(Any, None))._read(batches(), outcome, ())


async def test_a_tool_use_without_input_streams_and_finishes_as_an_empty_object() -> None:
    """No input_json_delta at all: the call's arguments are {} in the fragments as in the Finish."""
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                        "name": "now", "input": {}}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    outcome = Outcome()
    assert [batch async for batch in read_in_one(events, outcome)] == [[]]  # fragments only
    assert outcome.tool_deltas == [ToolCallDelta(0, "toolu_1", "now", ""), ToolCallDelta(0, "", "", "{}")]
    assert outcome.tool_calls == [ToolCall("toolu_1", "now", "{}")]


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
}}
EARLIER_CALL = {"id": "toolu_9", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}


async def test_tools_and_a_tool_conversation_go_out_in_anthropics_shape(upstream, http, key, tag) -> None:
    """The router's (OpenAI) vocabulary becomes Anthropic's: input_schema tools, tool_choice, the
    earlier call as a tool_use block, its result as a user turn's tool_result block."""
    turns = (ChatTurn("system", "Be brief."), ChatTurn("user", "Weather in Paris?"),
             ChatTurn("assistant", ""), ChatTurn("tool", "18C, sunny", tool_call_id="toolu_9"),
             ChatTurn("user", "And tomorrow?"))
    request = replace(chat(f"ok:{tag}", turns), provider_options={
        "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False, "assistant_tool_calls": {"2": [EARLIER_CALL]},
    })
    _, error = await drain(backend(upstream, http).generate(request, Outcome()))
    assert error is None
    [seen] = upstream.requests_for(f"ok:{tag}")
    body = seen["body"]
    assert body["tools"] == [{"name": "get_weather", "description": "Current weather",
                              "input_schema": WEATHER["function"]["parameters"]}]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"location": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_9", "content": "18C, sunny"},
            {"type": "text", "text": "And tomorrow?"}]},
    ]
    assert "assistant_tool_calls" not in body and "parallel_tool_calls" not in body


def test_a_failed_tool_result_says_so_to_anthropic() -> None:
    _, messages = to_messages((ChatTurn("user", "go"), ChatTurn("assistant", "calling"),
                               ChatTurn("tool", "boom", tool_call_id="t1", tool_failed=True),
                               ChatTurn("tool", "ok", tool_call_id="t2")))
    assert messages[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True},
        {"type": "tool_result", "tool_use_id": "t2", "content": "ok"}]}


async def test_cache_breakpoints_go_back_on_the_blocks_the_client_marked(upstream, http, key, tag) -> None:
    """The text is split where a marked block ended; a breakpoint at the end marks the turn's last
    block (a tool call, a tool result); a system prompt with one goes as blocks; tools keep theirs."""
    eph, hour = {"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}
    turns = (
        ChatTurn("system", "Rules.\nToday.", cache_breakpoints=(CacheBreakpoint(6, "1h"),)),
        ChatTurn("user", "Dé\nQ?", cache_breakpoints=(CacheBreakpoint(2),)),
        ChatTurn("assistant", "", cache_breakpoints=(CacheBreakpoint(0),)),
        ChatTurn("tool", "42", tool_call_id="toolu_9", cache_breakpoints=(CacheBreakpoint(2),)),
        ChatTurn("user", "And?", cache_breakpoints=(CacheBreakpoint(4),)),
    )
    request = replace(chat(f"ok:{tag}", turns), provider_options={
        "tools": [{**WEATHER, "cache_control": eph}], "assistant_tool_calls": {"2": [EARLIER_CALL]},
    })
    _, error = await drain(backend(upstream, http).generate(request, Outcome()))
    assert error is None
    [seen] = upstream.requests_for(f"ok:{tag}")
    body = seen["body"]
    assert body["system"] == [{"type": "text", "text": "Rules.", "cache_control": hour},
                              {"type": "text", "text": "\nToday."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Dé", "cache_control": eph},
                                     {"type": "text", "text": "\nQ?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "get_weather",
                                           "input": {"location": "Paris"}, "cache_control": eph}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_9", "content": "42", "cache_control": eph},
            {"type": "text", "text": "And?", "cache_control": eph}]},
    ]
    assert body["tools"][0]["cache_control"] == eph


async def test_images_go_as_image_blocks_among_the_text_with_their_breakpoints(upstream, http, key, tag) -> None:
    """An inline image becomes a base64 source again, a URL a url source; text is cut at the images,
    a text breakpoint at an image's offset stays on the text before it, an image's own on the image."""
    png, eph = "iVBORw0KGgo=", {"type": "ephemeral"}
    turn = ChatTurn(
        "user", "Look:this\nand that", cache_breakpoints=(CacheBreakpoint(5), CacheBreakpoint(9)),
        images=(Image(5, f"data:image/png;base64,{png}"),
                Image(18, "https://example.com/b.webp", cache=CacheBreakpoint(18, "1h"))),
    )
    _, error = await drain(backend(upstream, http).generate(chat(f"ok:{tag}", (turn,)), Outcome()))
    assert error is None
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["body"]["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Look:", "cache_control": eph},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "text", "text": "this", "cache_control": eph},
        {"type": "text", "text": "\nand that"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/b.webp"},
         "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]}]


def test_a_tool_results_images_go_inside_its_tool_result_block() -> None:
    shot = "data:image/png;base64,iVBORw0KGgo="
    _, messages = to_messages((
        ChatTurn("user", "look"), ChatTurn("assistant", ""),
        ChatTurn("tool", "the screen:", tool_call_id="t1", images=(Image(11, shot),),
                 cache_breakpoints=(CacheBreakpoint(11),)),
    ), {1: [EARLIER_CALL]})
    assert messages[2] == {"role": "user", "content": [{
        "type": "tool_result", "tool_use_id": "t1", "cache_control": {"type": "ephemeral"}, "content": [
            {"type": "text", "text": "the screen:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        ],
    }]}


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"}), (None, None),
])
async def test_tool_choice_maps_to_anthropics_names(upstream, http, key, tag, choice, expected) -> None:
    options: dict[str, Any] = {"tools": [WEATHER]} | ({"tool_choice": choice} if choice else {})
    _, error = await drain(backend(upstream, http).generate(
        replace(chat(f"ok:{tag}"), provider_options=options), Outcome()))
    assert error is None
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["body"].get("tool_choice") == expected


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}


@pytest.mark.parametrize(("response_format", "expected"), [
    ({"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA, "strict": True}},
     {"format": {"type": "json_schema", "schema": SCHEMA}}),
    ({"type": "text"}, None),
])
async def test_a_json_schema_response_format_goes_as_structured_outputs(
    upstream, http, key, tag, response_format, expected
) -> None:
    request = replace(chat(f"ok:{tag}"), provider_options={"response_format": response_format})
    _, error = await drain(backend(upstream, http).generate(request, Outcome()))
    assert error is None
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["body"].get("output_config") == expected and "response_format" not in seen["body"]


@pytest.mark.parametrize(("options", "param"), [
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"assistant_tool_calls": {"1": [{**EARLIER_CALL, "function": {"name": "f", "arguments": "[1]"}}]}},
     "messages"),
])
async def test_what_anthropic_cannot_take_is_refused_before_sending(
    upstream, http, key, tag, options, param
) -> None:
    turns = (ChatTurn("user", "hi"), ChatTurn("assistant", ""), ChatTurn("user", "go on"))
    _, error = await drain(backend(upstream, http).generate(
        replace(chat(f"ok:{tag}", turns), provider_options=options), Outcome()))
    assert isinstance(error, InvalidRequest) and error.param == param
    assert not is_retryable(error)
    assert upstream.requests_for(f"ok:{tag}") == []


@pytest.mark.parametrize(("scenario", "reason", "sequence"), [
    ("ok", "stop", None), ("stop-sequence", "stop_sequence", "\n\nHuman:"), ("refusal", "content_filter", None),
])
async def test_why_the_answer_ended_is_kept(upstream, http, key, tag, scenario, reason, sequence) -> None:
    """A Messages client reads stop_sequence (and which one) or refusal, as Anthropic said it."""
    outcome = Outcome()
    _, error = await drain(backend(upstream, http).generate(chat(f"{scenario}:{tag}", stop=("\n\nHuman:",)), outcome))
    assert error is None
    assert (outcome.finish_reason, outcome.stop_sequence) == (reason, sequence)


async def test_a_temperature_above_anthropics_range_is_refused_not_sent(upstream, http, key, tag) -> None:
    """Chat Completions allows 0-2, Anthropic 0-1: the model's next deployment may take it."""
    _, error = await drain(backend(upstream, http).generate(chat(f"ok:{tag}", temperature=1.5), Outcome()))
    assert isinstance(error, UnsupportedByBackend) and error.param == "temperature"
    assert upstream.requests_for(f"ok:{tag}") == []


@pytest.mark.parametrize(
    ("scenario", "cls", "code", "retryable"),
    [
        ("overloaded", Overloaded, "overloaded", True),
        ("rate-limited", UpstreamRateLimited, "upstream_rate_limited", True),
        ("server-error", UpstreamError, "upstream_error", True),
        ("context-too-long", ContextTooLong, "context_length_exceeded", False),
        ("bad-request", InvalidRequest, None, False),
        ("unauthorized", UpstreamError, "upstream_auth", True),
        ("no-such-model", UpstreamError, "upstream_model_not_found", True),
    ],
)
async def test_error_statuses_map_to_our_errors(upstream, http, key, tag, scenario, cls, code, retryable) -> None:
    got, error = await drain(backend(upstream, http).generate(chat(f"{scenario}:{tag}"), Outcome()))
    assert got == []
    assert type(error) is cls
    assert error.code == code
    assert is_retryable(error) is retryable
    assert error.http_status != 401
    for leak in (key, "4c1f8a3e", "anthropic", "claude.com"):
        assert leak not in error.message


async def test_rate_limit_carries_retry_after(upstream, http, key, tag) -> None:
    _, error = await drain(backend(upstream, http).generate(chat(f"rate-limited:{tag}"), Outcome()))
    assert isinstance(error, UpstreamRateLimited)
    assert error.retry_after == 3.0


async def test_overloaded_event_mid_stream(upstream, http, key, tag) -> None:
    got, error = await drain(backend(upstream, http).generate(chat(f"error-mid-stream:{tag}"), Outcome()))
    assert got == recorded("messages-error-mid-stream")[0]
    assert len(got) == 3
    assert isinstance(error, Overloaded)


async def test_slow_upstream_times_out(upstream, http, key, tag) -> None:
    started = time.monotonic()
    quick = ReadTimeouts(before_output=0.3, after_output=5.0)
    got, error = await drain(backend(upstream, http, quick).generate(chat(f"slow:{tag}"), Outcome()))
    assert got == [] and isinstance(error, UpstreamTimeout)
    assert time.monotonic() - started < 2.0


async def test_the_silence_after_the_first_text_has_its_own_limit(upstream, http, key, tag) -> None:
    """"quiet": 1.5 s before message_start, and 1.5 s again after two text deltas. The first is
    within the 3 s allowed before any output, the second over the 0.5 s allowed after it."""
    timeouts = ReadTimeouts(before_output=3.0, after_output=0.5)
    got, error = await drain(backend(upstream, http, timeouts).generate(chat(f"quiet:{tag}"), Outcome()))
    assert got == recorded("messages-ok")[0][:2] and isinstance(error, UpstreamTimeout)


async def test_count_tokens_asks_anthropics_endpoint_with_the_prompt_side_of_the_request(
    upstream, http, key, tag
) -> None:
    """The same conversion as a generation (system apart, tools in Anthropic's shape), but only what
    count_tokens takes: nothing about generating, and the provider's count as it said it."""
    request = replace(chat(f"ok:{tag}", temperature=0.5, top_k=3, stop=("END",)), end_user="tg-abc",
                      provider_options={"tools": [WEATHER], "tool_choice": "auto"})
    assert await backend(upstream, http).count_tokens(request) == 2095  # the recorded answer
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["path"] == "/v1/messages/count_tokens" and seen["auth"]
    assert seen["body"] == {
        "model": f"ok:{tag}", "system": "Be brief.", "messages": [{"role": "user", "content": "Hi there"}],
        "tools": [{"name": "get_weather", "description": "Current weather",
                   "input_schema": WEATHER["function"]["parameters"]}],
        "tool_choice": {"type": "auto"},
    }


@pytest.mark.parametrize(("scenario", "cls"), [
    ("rate-limited", UpstreamRateLimited), ("overloaded", Overloaded), ("server-error", UpstreamError),
])
async def test_count_tokens_failures_map_as_a_generations_do(upstream, http, key, tag, scenario, cls) -> None:
    with pytest.raises(cls) as failed:
        await backend(upstream, http).count_tokens(chat(f"{scenario}:{tag}"))
    assert key not in failed.value.message and "4c1f8a3e" not in failed.value.message


async def test_cut_mid_stream_raises_after_some_deltas(upstream, http, key, tag) -> None:
    got, error = await drain(backend(upstream, http).generate(chat(f"cut-mid-stream:{tag}"), Outcome()))
    assert got == recorded("messages-ok")[0][:3]
    assert type(error) is UpstreamError


async def test_closing_the_generator_disconnects_the_upstream(upstream, http, key, tag) -> None:
    model = f"slow-stream:{tag}"
    gen = cast(AsyncGenerator[list[str], None], backend(upstream, http).generate(chat(model), Outcome()))
    assert len([await anext(gen), await anext(gen)]) == 2
    await gen.aclose()
    for _ in range(100):
        if upstream.model_stats(model)["disconnects"]:
            break
        await asyncio.sleep(0.05)
    stats = upstream.model_stats(model)
    assert (stats["requests"], stats["completed"], stats["disconnects"], stats["in_flight"]) == (1, 0, 1, 0)


@pytest.mark.parametrize(
    "turns",
    [
        (ChatTurn("system", "only a system prompt"),),
        (ChatTurn("developer", "unknown role"),),
    ],
)
async def test_unsupported_conversations_are_refused_before_sending(upstream, http, key, tag, turns) -> None:
    _, error = await drain(backend(upstream, http).generate(chat(f"ok:{tag}", turns), Outcome()))
    assert isinstance(error, InvalidRequest)
    assert upstream.requests_for(f"ok:{tag}") == []


async def test_raw_prompt_is_refused(upstream, http, key, tag) -> None:
    request = GenerationRequest(request_id="r", upstream_model=f"ok:{tag}", sampling=Sampling(max_tokens=5),
                                prompt="Once upon")
    _, error = await drain(backend(upstream, http).generate(request, Outcome()))
    assert isinstance(error, InvalidRequest)


def test_to_messages_keeps_single_turns_plain() -> None:
    system, messages = to_messages((ChatTurn("user", "a"), ChatTurn("assistant", "b")))
    assert system is None
    assert messages == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]


async def test_missing_key_env_fails_before_sending(upstream, http, tag, monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    _, error = await drain(backend(upstream, http).generate(chat(f"ok:{tag}"), Outcome()))
    assert isinstance(error, UpstreamError) and error.code == "upstream_auth"
    assert upstream.requests_for(f"ok:{tag}") == []
    assert await backend(upstream, http).ready() is False


async def test_ready_and_unreachable(upstream, http, key) -> None:
    assert await backend(upstream, http).ready() is True
    dead = AnthropicBackend(f"http://127.0.0.1:{free_port()}", KEY_ENV, http)
    assert await dead.ready() is False
    _, error = await drain(dead.generate(chat("ok"), Outcome()))
    assert isinstance(error, UpstreamError) and error.code == "upstream_unreachable"


async def test_finished_streams_return_their_connection_to_the_pool(
    upstream: UpstreamServer, http: ProviderHTTP, key: str, tag: str
) -> None:
    b = backend(upstream, http)
    for _ in range(5):
        outcome = Outcome()
        async for _text in b.generate(chat(f"ok:{tag}"), outcome):
            pass
        assert outcome.usage_reported
    assert http.idle_connections == http.open_connections == 1
