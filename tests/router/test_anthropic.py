"""AnthropicBackend against the replaying upstream: recorded Messages API traffic on a real socket."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, cast

import pytest

from infra.stack.ports import free_port
from services.common.errors import (
    ContextTooLong,
    InvalidRequest,
    Overloaded,
    TollgateError,
    UpstreamError,
    UpstreamTimeout,
)
from services.router.backends import ChatTurn, GenerationRequest, Outcome, Sampling
from services.router.backends.anthropic import AnthropicBackend, to_messages
from services.router.backends.http import ProviderHTTP
from services.router.backends.provider_errors import UpstreamRateLimited, is_retryable
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


def backend(upstream: UpstreamServer, http: ProviderHTTP, timeout: float = 5.0) -> AnthropicBackend:
    return AnthropicBackend(upstream.anthropic_base_url, KEY_ENV, http, timeout=timeout)


def chat(model: str, turns: tuple[ChatTurn, ...] | None = None, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(
        request_id="req-" + uuid.uuid4().hex, upstream_model=model,
        sampling=Sampling(max_tokens=sampling.pop("max_tokens", 256), **sampling),
        messages=turns or (ChatTurn("system", "Be brief."), ChatTurn("user", "Hi there")),
    )


async def drain(gen: Any) -> tuple[list[str], BaseException | None]:
    got: list[str] = []
    try:
        async for batch in gen:
            assert batch, "a backend never yields an empty batch"
            got.extend(batch)
    except TollgateError as exc:
        return got, exc
    return got, None


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
    assert "seed" not in body and "stop" not in body


async def test_tool_use_finishes_with_tool_calls(upstream, http, key, tag) -> None:
    outcome = Outcome()
    got, error = await drain(backend(upstream, http).generate(chat(f"tool-use:{tag}"), outcome))
    assert error is None
    assert got == recorded("messages-tool-use")[0]
    assert outcome.finish_reason == "tool_calls"
    assert outcome.output_tokens == 89


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
    got, error = await drain(backend(upstream, http, timeout=0.3).generate(chat(f"slow:{tag}"), Outcome()))
    assert got == [] and isinstance(error, UpstreamTimeout)
    assert time.monotonic() - started < 2.0


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
        (ChatTurn("user", "call it"), ChatTurn("tool", "42", tool_call_id="toolu_1")),
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
    assert sum(len(idle) for idle in http.pooled.connector._conns.values()) == 1  # type: ignore[union-attr]
