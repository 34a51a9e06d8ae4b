"""OpenAICompatBackend against the replaying upstream: recorded OpenAI traffic on a real socket."""

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
    UnsupportedByBackend,
    UpstreamError,
    UpstreamTimeout,
)
from services.router.backends import (
    ChatTurn,
    GenerationRequest,
    Image,
    Outcome,
    Sampling,
    ToolCall,
    ToolCallDelta,
)
from services.router.backends.http import ProviderHTTP, ReadTimeouts
from services.router.backends.openai_compat import OpenAICompatBackend
from services.router.backends.provider_errors import UpstreamRateLimited, is_retryable, is_transient
from tests.router.draining import drain
from tests.upstream.harness import UpstreamServer

FIXTURES = Path(__file__).parents[1] / "upstream" / "fixtures" / "openai"
KEY_ENV = "TOLLGATE_TEST_OPENAI_KEY"


def recorded(name: str) -> tuple[list[str], dict[str, Any] | None]:
    """The text deltas and the usage a fixture carries, read straight from the recording."""
    deltas: list[str] = []
    usage = None
    for line in (FIXTURES / f"{name}.sse").read_text().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line.removeprefix("data: "))
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices", []):
            text = choice["delta"].get("content") if "delta" in choice else choice.get("text")
            if text:
                deltas.append(text)
    return deltas, usage


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "sk-test-" + uuid.uuid4().hex
    monkeypatch.setenv(KEY_ENV, value)
    return value


def backend(upstream: UpstreamServer, http: ProviderHTTP, **kwargs: Any) -> OpenAICompatBackend:
    kwargs.setdefault("timeouts", ReadTimeouts(before_output=5.0, after_output=5.0))
    return OpenAICompatBackend(upstream.openai_base_url, KEY_ENV, http, **kwargs)


def chat(model: str, options: dict[str, Any] | None = None, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(
        request_id="req-" + uuid.uuid4().hex, upstream_model=model,
        sampling=Sampling(max_tokens=sampling.pop("max_tokens", 64), **sampling),
        messages=(ChatTurn("system", "Be brief."), ChatTurn("user", "Hi there")),
        provider_options=options or {},
    )


async def test_chat_stream_yields_recorded_deltas_and_final_chunk_usage(upstream, http, key, tag) -> None:
    outcome = Outcome()
    got, error = await drain(backend(upstream, http).generate(chat(f"ok:{tag}", temperature=0.2, top_p=0.9,
                                                                    seed=7, stop=("\n\n",)), outcome))
    deltas, usage = recorded("chat-ok")
    assert error is None
    assert got == deltas
    assert usage is not None
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0
    assert outcome.input_tokens == usage["prompt_tokens"] - cached
    assert outcome.cached_input_tokens == cached
    assert outcome.output_tokens == usage["completion_tokens"]
    assert outcome.reasoning_tokens == 0
    assert outcome.cache_write_tokens == 0
    assert outcome.usage_reported is True
    assert outcome.finish_reason == "stop"

    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["path"] == "/v1/chat/completions"
    assert seen["auth"] is True
    assert seen["stream_options"] == {"include_usage": True}
    body = seen["body"]
    assert body["stream"] is True
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    assert body["max_tokens"] == 64
    assert (body["temperature"], body["top_p"], body["seed"], body["stop"]) == (0.2, 0.9, 7, ["\n\n"])
    assert "user" not in body  # the client named no end user


async def test_a_turn_with_images_goes_out_as_content_parts_in_the_clients_order(upstream, http, key, tag) -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    turn = ChatTurn("user", "what\nis?", images=(Image(0, png, "low"), Image(7, "https://example.com/a.jpg")))
    request = replace(chat(f"ok:{tag}"), messages=(turn,))
    _, error = await drain(backend(upstream, http, image_urls=True).generate(request, Outcome()))
    assert error is None
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["body"]["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
        {"type": "text", "text": "what\nis"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
        {"type": "text", "text": "?"},
    ]}]


async def test_a_server_without_image_urls_gets_inline_images_only(upstream, http, key, tag) -> None:
    """A self-hosted server fetches a URL from inside the operator's network: without the feature a URL
    is refused before sending (the next deployment may take it), and an inline image still goes."""
    png = "data:image/png;base64,iVBORw0KGgo="
    by_url = (ChatTurn("user", "what?", images=(Image(5, "http://169.254.169.254/latest/meta-data"),)),)
    _, error = await drain(backend(upstream, http).generate(replace(chat(f"ok:{tag}"), messages=by_url), Outcome()))
    assert isinstance(error, UnsupportedByBackend) and error.param == "messages"
    assert "inline" in error.message and upstream.requests_for(f"ok:{tag}") == []
    inline = (ChatTurn("user", "what?", images=(Image(5, png),)),)
    _, error = await drain(backend(upstream, http).generate(replace(chat(f"ok:{tag}"), messages=inline), Outcome()))
    assert error is None and len(upstream.requests_for(f"ok:{tag}")) == 1


async def test_an_image_in_a_tool_result_is_refused_before_sending(upstream, http, key, tag) -> None:
    """OpenAI's tool messages take text only: the next deployment (an Anthropic one) may take it."""
    turns = (ChatTurn("user", "look"), ChatTurn("tool", "shot:", tool_call_id="t1",
                                                 images=(Image(5, "https://example.com/s.png"),)))
    request = replace(chat(f"ok:{tag}"), messages=turns)
    _, error = await drain(backend(upstream, http, image_urls=True).generate(request, Outcome()))
    assert isinstance(error, UnsupportedByBackend) and error.param == "messages"
    assert "tool result" in error.message and upstream.requests_for(f"ok:{tag}") == []


async def test_the_end_user_goes_out_as_user(upstream, http, key, tag) -> None:
    request = replace(chat(f"ok:{tag}"), end_user="tg-0123")
    await drain(backend(upstream, http).generate(request, Outcome()))
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["body"]["user"] == "tg-0123"


async def test_reasoning_tokens_are_part_of_output(upstream, http, key, tag) -> None:
    outcome = Outcome()
    got, error = await drain(backend(upstream, http).generate(chat(f"reasoning:{tag}"), outcome))
    deltas, usage = recorded("chat-reasoning")
    assert error is None and got == deltas and usage is not None
    assert outcome.reasoning_tokens == usage["completion_tokens_details"]["reasoning_tokens"] == 192
    assert outcome.output_tokens == usage["completion_tokens"]
    assert outcome.input_tokens == usage["prompt_tokens"]


async def test_stream_without_usage_leaves_usage_unreported(upstream, http, key, tag) -> None:
    outcome = Outcome()
    got, error = await drain(backend(upstream, http).generate(chat(f"ok-no-usage:{tag}"), outcome))
    assert error is None
    assert got == recorded("chat-ok-no-usage")[0]
    assert outcome.usage_reported is False
    assert (outcome.input_tokens, outcome.output_tokens) == (0, 0)


async def test_completion_prompt_goes_to_completions_endpoint(upstream, http, key, tag) -> None:
    outcome = Outcome()
    request = GenerationRequest(request_id="r", upstream_model=f"ok:{tag}", sampling=Sampling(max_tokens=7),
                                prompt="Say something")
    got, error = await drain(backend(upstream, http).generate(request, outcome))
    deltas, usage = recorded("completion-ok")
    assert error is None and got == deltas and usage is not None
    assert (outcome.input_tokens, outcome.output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert outcome.finish_reason == "length"
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["path"] == "/v1/completions"
    assert seen["body"]["prompt"] == "Say something" and seen["body"]["max_tokens"] == 7
    assert seen["stream_options"] == {"include_usage": True}


async def test_tool_call_stream_finishes_with_tool_calls(upstream, http, key, tag) -> None:
    outcome = Outcome()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    options = {"tools": tools, "tool_choice": "auto", "stream_options": {"include_usage": False}}
    fragments: list[ToolCallDelta] = []
    got, error = await drain(backend(upstream, http).generate(chat(f"tool-calls:{tag}", options), outcome),
                             outcome, fragments)
    assert error is None and got == []
    assert outcome.finish_reason == "tool_calls"
    assert outcome.usage_reported is True
    [seen] = upstream.requests_for(f"tool-calls:{tag}")
    assert seen["body"]["tools"] == tools and seen["body"]["tool_choice"] == "auto"
    assert seen["stream_options"] == {"include_usage": True}  # ours wins over the caller's
    assert outcome.tool_calls == [  # rebuilt from the recorded argument fragments
        ToolCall("call_Jx4Pq7ZbN2mW8vR1tY6sK3dL", "get_weather", '{"location":"Paris, France","unit":"celsius"}')
    ]
    # and passed on as they came: the id and name once, the arguments piece by piece
    assert len(fragments) > 5 and {f.index for f in fragments} == {0}
    assert (fragments[0].id, fragments[0].name) == ("call_Jx4Pq7ZbN2mW8vR1tY6sK3dL", "get_weather")
    assert not any(f.id or f.name for f in fragments[1:])
    assert "".join(f.arguments for f in fragments) == outcome.tool_calls[0].arguments


async def test_earlier_tool_calls_go_back_on_their_assistant_turn(upstream, http, key, tag) -> None:
    """The edge carries an assistant turn's calls beside the turns (a ChatTurn holds text only); the
    provider must get them on the turn, where its tool result refers to them, and never as a field."""
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    request = replace(chat(f"ok:{tag}", {"assistant_tool_calls": {"2": [call]}}), messages=(
        ChatTurn("system", "Be brief."), ChatTurn("user", "Weather?"), ChatTurn("assistant", ""),
        ChatTurn("tool", "18C", tool_call_id="call_1"),
    ))
    _, error = await drain(backend(upstream, http).generate(request, Outcome()))
    assert error is None
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["body"]["messages"][2:] == [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "18C", "tool_call_id": "call_1"},
    ]
    assert "assistant_tool_calls" not in seen["body"]


async def test_an_anthropic_clients_tool_cache_control_is_not_sent_to_openai(upstream, http, key, tag) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    request = chat(f"ok:{tag}", {"tools": [{**tool, "cache_control": {"type": "ephemeral"}}]})
    _, error = await drain(backend(upstream, http).generate(request, Outcome()))
    assert error is None
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["body"]["tools"] == [tool]


async def test_a_tool_call_without_an_id_gets_one(upstream, http, key, tag) -> None:
    """Some compatible servers leave the id out; the client needs one to send the result back."""
    outcome = Outcome()
    fragments: list[ToolCallDelta] = []
    await drain(backend(upstream, http).generate(chat(f"tool-calls-no-id:{tag}"), outcome), outcome, fragments)
    [call] = outcome.tool_calls
    assert fragments[0].id == call.id  # made up once: the streamed id is the one the Finish carries
    assert call.id.startswith("call_") and len(call.id) > len("call_") and call.name == "get_weather"


async def test_top_k_is_sent_only_to_servers_that_take_it(upstream, http, key, tag) -> None:
    """OpenAI refuses top_k; dropping it would change the sampling the client asked for."""
    _, error = await drain(backend(upstream, http).generate(chat(f"ok:{tag}", top_k=40), Outcome()))
    assert isinstance(error, UnsupportedByBackend) and error.param == "top_k"
    assert upstream.requests_for(f"ok:{tag}") == []  # refused before anything was sent
    await drain(backend(upstream, http, send_top_k=True, max_tokens_field="max_completion_tokens").generate(
        chat(f"ok:{tag}", top_k=40), Outcome()))
    [vllm] = upstream.requests_for(f"ok:{tag}")
    assert vllm["body"]["top_k"] == 40
    assert vllm["body"]["max_completion_tokens"] == 64 and "max_tokens" not in vllm["body"]


async def test_usage_on_every_chunk_bills_the_prompt_of_a_stream_cut_short(upstream, http, key, tag) -> None:
    """With usage only in the final chunk, a stream that breaks (or that the client cuts) never learns
    its input tokens; a server asked for usage on every chunk (vLLM) says them in the first."""
    plain, continuous = Outcome(), Outcome()
    _, broken = await drain(backend(upstream, http).generate(chat(f"cut-mid-stream:{tag}"), plain))
    got, cut = await drain(backend(upstream, http, continuous_usage=True).generate(
        chat(f"continuous-usage-cut:{tag}"), continuous))
    assert isinstance(broken, UpstreamError) and isinstance(cut, UpstreamError)  # both cut mid-answer
    assert plain.input_tokens == 0  # what billing had before
    assert got and (continuous.input_tokens, continuous.output_tokens) == (2006, len(got))
    [sent] = upstream.requests_for(f"continuous-usage-cut:{tag}")
    assert sent["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    whole = Outcome()
    text, error = await drain(backend(upstream, http, continuous_usage=True).generate(
        chat(f"continuous-usage:{tag}"), whole))
    assert error is None and "".join(text) and (whole.input_tokens, whole.output_tokens) == (2006, 9)


async def test_n_above_one_is_refused_before_anything_is_sent(upstream, http, key, tag) -> None:
    _, error = await drain(backend(upstream, http).generate(chat(f"ok:{tag}", {"n": 3}), Outcome()))
    assert isinstance(error, InvalidRequest)
    assert upstream.requests_for(f"ok:{tag}") == []


@pytest.mark.parametrize(
    ("scenario", "cls", "code", "retryable"),
    [
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
    assert error.http_status != 401  # a provider refusing our credentials is never the client's 401
    for leak in ("sk-", "org-", "proj_", key, "openai"):
        assert leak not in error.message


async def test_rate_limit_carries_retry_after_and_renders_429(upstream, http, key, tag) -> None:
    _, error = await drain(backend(upstream, http).generate(chat(f"rate-limited:{tag}"), Outcome()))
    assert isinstance(error, UpstreamRateLimited) and isinstance(error, UpstreamError)
    assert error.retry_after == 2.0
    assert error.http_status == 429
    assert is_transient(error)


async def test_slow_upstream_times_out(upstream, http, key, tag) -> None:
    started = time.monotonic()
    quick = ReadTimeouts(before_output=0.3, after_output=5.0)
    got, error = await drain(backend(upstream, http, timeouts=quick).generate(chat(f"slow:{tag}"), Outcome()))
    assert got == []
    assert isinstance(error, UpstreamTimeout)
    assert is_retryable(error)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(("before_output", "after_output", "pieces", "timed_out"), [
    (3.0, 3.0, None, False),  # both silences allowed: the whole answer
    (0.5, 3.0, 0, True),  # the silence before the first output is too long
    (3.0, 0.5, 2, True),  # the one after two pieces of text is
], ids=["both-allowed", "before-output-too-long", "after-output-too-long"])
async def test_a_provider_may_be_silent_longer_before_its_first_output_than_after_it(
    upstream, http, key, tag, before_output: float, after_output: float, pieces: int | None, timed_out: bool
) -> None:
    """"quiet": headers at once, then 1.5 s of silence before the first event and again before the
    fourth (after the role chunk and two pieces of text)."""
    timeouts = ReadTimeouts(before_output=before_output, after_output=after_output)
    got, error = await drain(backend(upstream, http, timeouts=timeouts).generate(chat(f"quiet:{tag}"), Outcome()))
    assert got == recorded("chat-ok")[0][:pieces]
    assert isinstance(error, UpstreamTimeout) if timed_out else error is None


async def test_the_readers_own_time_is_not_the_providers_silence(upstream, http, key, tag) -> None:
    """A reader that takes 0.4 s over each piece, with 0.2 s of silence allowed: the provider is not
    silent (its events come every 50 ms and wait in the socket), so nothing times out."""
    timeouts = ReadTimeouts(before_output=5.0, after_output=0.2)
    gen = cast(AsyncGenerator[list[str], None],
               backend(upstream, http, timeouts=timeouts).generate(chat(f"slow-stream:{tag}"), Outcome()))
    for _ in range(3):
        assert await anext(gen)
        await asyncio.sleep(0.4)
    await gen.aclose()


async def test_a_caller_cancelled_while_the_provider_is_silent_stays_cancelled(upstream, http, key, tag) -> None:
    gen = backend(upstream, http).generate(chat(f"slow:{tag}"), Outcome())
    waiting = asyncio.create_task(anext(gen))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_count_tokens_is_not_something_an_openai_compatible_server_can_do(upstream, http, key, tag) -> None:
    with pytest.raises(UnsupportedByBackend):
        await backend(upstream, http).count_tokens(chat(f"ok:{tag}"))
    assert upstream.requests_for(f"ok:{tag}") == []  # nothing was sent


async def test_a_server_with_vllms_tokenize_counts_the_chat_as_it_would_render_it(upstream, http, key, tag) -> None:
    """The messages and tools of the completion, at the server's root, with the generation prompt."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    request = replace(chat(f"ok:{tag}", temperature=0.3), provider_options={"tools": tools})
    assert await backend(upstream, http, tokenize=True).count_tokens(request) == 36  # the recorded count
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["path"] == "/tokenize" and seen["auth"]
    assert seen["body"] == {
        "model": f"ok:{tag}", "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Hi there"}],
        "tools": tools, "add_generation_prompt": True,
    }


async def test_openais_own_api_counts_the_chat_as_a_responses_input(upstream, http, key, tag) -> None:
    """OpenAI has no chat counter: the same conversation goes to /responses/input_tokens as items."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    turns = (ChatTurn("system", "Be brief."), ChatTurn("user", "Weather?"), ChatTurn("assistant", "Checking."),
             ChatTurn("tool", "18C", tool_call_id="call_1"))
    calls = {"2": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}
    request = replace(chat(f"ok:{tag}"), messages=turns, provider_options={
        "tools": tools, "tool_choice": "auto", "assistant_tool_calls": calls, "reasoning_effort": "low"})
    assert await backend(upstream, http, input_tokens=True).count_tokens(request) == 41  # the recorded count
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["path"] == "/v1/responses/input_tokens" and seen["auth"]
    assert seen["body"] == {
        "model": f"ok:{tag}", "input": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Checking."},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        ],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        "tool_choice": "auto", "reasoning": {"effort": "low"},
    }


async def test_a_completion_prompt_is_counted_by_tokenize_and_token_ids_by_themselves(
    upstream, http, key, tag
) -> None:
    prompt = GenerationRequest(request_id="req-1", upstream_model=f"ok:{tag}", sampling=Sampling(max_tokens=4),
                               prompt="Once upon a time")
    assert await backend(upstream, http, tokenize=True).count_tokens(prompt) == 36
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["body"] == {"model": f"ok:{tag}", "prompt": "Once upon a time", "add_special_tokens": True}
    ids = replace(prompt, prompt=None, prompt_tokens=(1, 2, 3))
    assert await backend(upstream, http).count_tokens(ids) == 3  # no server asked
    with pytest.raises(UnsupportedByBackend):  # OpenAI's counter takes Responses input, not a prompt
        await backend(upstream, http, input_tokens=True).count_tokens(prompt)
    assert len(upstream.requests_for(f"ok:{tag}")) == 1


async def test_cut_mid_stream_raises_after_some_deltas(upstream, http, key, tag) -> None:
    outcome = Outcome()
    got, error = await drain(backend(upstream, http).generate(chat(f"cut-mid-stream:{tag}"), outcome))
    assert got == recorded("chat-ok")[0][:3]
    assert type(error) is UpstreamError
    assert outcome.usage_reported is False


async def test_error_event_mid_stream_raises(upstream, http, key, tag) -> None:
    got, error = await drain(backend(upstream, http).generate(chat(f"error-mid-stream:{tag}"), Outcome()))
    assert got == ["Once", " upon", " a"]
    assert type(error) is UpstreamError
    assert "mid-stream" in error.message


async def test_closing_the_generator_disconnects_the_upstream(upstream, http, key, tag) -> None:
    model = f"slow-stream:{tag}"
    gen = cast(AsyncGenerator[list[str], None], backend(upstream, http).generate(chat(model), Outcome()))
    first = [await anext(gen), await anext(gen)]
    await gen.aclose()
    assert len(first) == 2
    for _ in range(100):
        if upstream.model_stats(model)["disconnects"]:
            break
        await asyncio.sleep(0.05)
    stats = upstream.model_stats(model)
    assert (stats["requests"], stats["completed"], stats["disconnects"], stats["in_flight"]) == (1, 0, 1, 0)


async def test_missing_key_env_fails_before_sending(upstream, http, tag, monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    _, error = await drain(backend(upstream, http).generate(chat(f"ok:{tag}"), Outcome()))
    assert isinstance(error, UpstreamError) and error.code == "upstream_auth"
    assert is_retryable(error) and not is_transient(error)
    assert upstream.requests_for(f"ok:{tag}") == []


async def test_keyless_deployment_sends_no_authorization(upstream, http, tag) -> None:
    keyless = OpenAICompatBackend(upstream.openai_base_url, None, http)
    _, error = await drain(keyless.generate(chat(f"ok:{tag}"), Outcome()))
    assert error is None
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["auth"] is False and "authorization" not in seen["headers"]


async def test_ready_and_unreachable(upstream, http, key) -> None:
    assert await backend(upstream, http).ready() is True
    dead = OpenAICompatBackend(f"http://127.0.0.1:{free_port()}/v1", KEY_ENV, http)
    assert await dead.ready() is False
    _, error = await drain(dead.generate(chat("ok"), Outcome()))
    assert isinstance(error, UpstreamError) and error.code == "upstream_unreachable"
    assert is_retryable(error)


async def test_finished_streams_return_their_connection_to_the_pool(
    upstream: UpstreamServer, http: ProviderHTTP, key: str, tag: str
) -> None:
    """Stopping at [DONE] without reading the end of the body dropped the connection: a new
    TCP (and, against a real provider, TLS) handshake for every request."""
    b = backend(upstream, http)
    for _ in range(5):
        _, error = await drain(b.generate(chat(f"ok:{tag}"), Outcome()))
        assert error is None
    assert http.idle_connections == http.open_connections == 1
