"""Keep-alives through the real platform: an edge with a short ``EDGE_STREAM_KEEPALIVE_SECONDS`` in
front of the replaying upstream's ``quiet`` scenario (headers at once, then 1.5 s of silence before the
first event and again mid-answer, as a thinking model streams). The stream starts before the first
token and keeps bytes flowing through every silence; the SDKs still read the same answer; a failure
that comes after the stream started is an error event the SDK raises; a client that leaves during a
silence still cancels the upstream request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import anthropic
import httpx
import openai
import pytest

from infra.stack.ports import free_port
from infra.stack.services import ServiceProcess
from services.common.kafka.producer import EventProducer
from tests.e2e.conftest import Stack, publish_provider_model
from tests.kafka_helpers import ClientSettings

KEEPALIVE_SECONDS = 0.4  # the upstream's silences are 1.5 s: three keep-alives each
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module", name="edge_url")
def edge_url_fixture(stack: Stack) -> Iterator[str]:
    """A second edge, on the same platform, that sends keep-alives after 0.4 s of quiet."""
    platform = stack.platform
    env = {**platform.service_env("edge"), "TOLLGATE_PORT": str(free_port()), "EDGE_INSTANCE_ID": "edge-keepalive",
           "EDGE_STREAM_KEEPALIVE_SECONDS": str(KEEPALIVE_SECONDS)}
    edge = ServiceProcess("edge", int(env["TOLLGATE_PORT"]), env, platform.config.run_dir / "edge-keepalive")
    edge.start()
    try:
        edge.wait_ready()
        yield edge.base_url
    finally:
        edge.stop()


@pytest.fixture(scope="module", name="models")
async def models_fixture(stack: Stack, edge_url: str) -> AsyncIterator[None]:
    platform = stack.platform
    producer = EventProducer(
        ClientSettings(kafka_bootstrap=platform.bus.bootstrap, topic_prefix=platform.config.topic_prefix),
        client_id="e2e-keepalive",
    )
    await producer.start()
    base = stack.upstream
    for name, backend, url, scenario in (
        ("oa-quiet", "openai", base.openai_base_url, "quiet"),
        ("an-quiet", "anthropic", base.anthropic_base_url, "quiet"),
        ("oa-late-429", "openai", base.openai_base_url, "slow-rate-limited"),
    ):
        await publish_provider_model(producer, stack.model(name), backend, url, scenario)
    await producer.stop()
    wanted = {stack.model(name) for name in ("oa-quiet", "an-quiet", "oa-late-429")}
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient() as http:
        for url in (edge_url, stack.base_url.removesuffix("/v1")):
            while not wanted <= {m["id"] for m in (await http.get(
                f"{url}/v1/models", headers={"authorization": f"Bearer {stack.key}"})).json()["data"]}:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
    yield


def _openai(url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=url, max_retries=0)


def _anthropic(url: str, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=key, base_url=url, max_retries=0)


async def _raw_lines(url: str, key: str, body: dict[str, object]) -> tuple[int, list[str]]:
    async with httpx.AsyncClient(timeout=30) as http, http.stream(
        "POST", url, json=body, headers={"authorization": f"Bearer {key}"}
    ) as reply:
        return reply.status_code, [line async for line in reply.aiter_lines() if line]


def _runs(lines: list[str], mark: str) -> list[int]:
    """How many ``mark`` lines stand before each other line (0 where none)."""
    counts, run = [], 0
    for line in lines:
        if line == mark:
            run += 1
        else:
            counts.append(run)
            run = 0
    return counts


async def test_a_thinking_model_streams_keep_alives_and_the_sdk_reads_the_same_answer(
    stack: Stack, edge_url: str, models: None
) -> None:
    model = stack.model("oa-quiet")
    body = {"model": model, "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    status, lines = await _raw_lines(f"{edge_url}/v1/chat/completions", stack.key, body)
    assert status == 200
    runs = _runs(lines, ": keep-alive")
    assert runs[0] >= 2  # before the first token: the stream had started
    assert sum(1 for run in runs[1:] if run >= 2) == 1  # the silence mid-answer, and only there
    assert lines[-1] == "data: [DONE]"

    async with _openai(stack.base_url, stack.key) as plain, _openai(f"{edge_url}/v1", stack.key) as client:
        reference = await plain.chat.completions.create(model=stack.model("oa-ok"), messages=HI, stream=False)
        async with client.chat.completions.stream(
            model=model, messages=HI, stream_options={"include_usage": True}
        ) as stream:
            final = await stream.get_final_completion()
    assert final.choices[0].message.content == reference.choices[0].message.content
    assert final.usage is not None and reference.usage is not None
    assert final.usage.prompt_tokens == reference.usage.prompt_tokens
    assert final.usage.completion_tokens == reference.usage.completion_tokens


async def test_an_anthropic_stream_opens_at_once_and_pings_through_the_silences(
    stack: Stack, edge_url: str, models: None
) -> None:
    model = stack.model("an-quiet")
    async with httpx.AsyncClient(timeout=30) as http, http.stream(
        "POST", f"{edge_url}/v1/messages", headers={"x-api-key": stack.key, "anthropic-version": "2023-06-01"},
        json={"model": model, "max_tokens": 64, "messages": HI, "stream": True},
    ) as reply:
        names = [line.removeprefix("event: ") async for line in reply.aiter_lines() if line.startswith("event: ")]
    assert names[:2] == ["message_start", "content_block_start"] and names[-1] == "message_stop"
    first_text = names.index("content_block_delta")
    assert names[2:first_text].count("ping") >= 2  # the opening's ping, then one per 0.4 s of silence
    assert names[first_text:].count("ping") >= 2

    async with _anthropic(stack.base_url.removesuffix("/v1"), stack.key) as plain, \
            _anthropic(edge_url, stack.key) as client:
        reference = await plain.messages.create(model=stack.model("an-ok"), max_tokens=64,
                                                messages=HI)  # type: ignore[arg-type]
        async with client.messages.stream(model=model, max_tokens=64, messages=HI) as stream:  # type: ignore[arg-type]
            final = await stream.get_final_message()
    assert [block.model_dump(include={"type", "text"}) for block in final.content] == [
        block.model_dump(include={"type", "text"}) for block in reference.content]
    assert final.usage.input_tokens == reference.usage.input_tokens
    assert final.usage.output_tokens == reference.usage.output_tokens


async def test_a_failure_after_the_stream_started_is_an_error_event(stack: Stack, edge_url: str, models: None) -> None:
    """The upstream answers 429 after 1.5 s: past the keep-alive interval the stream has started, so
    the client gets the error in the stream; within it (the default edge, 10 s) it is still a 429."""
    model = stack.model("oa-late-429")
    async with _openai(f"{edge_url}/v1", stack.key) as client, _openai(stack.base_url, stack.key) as plain:
        stream = await client.chat.completions.create(model=model, messages=HI, stream=True)
        with pytest.raises(openai.APIError) as failed:
            async for _ in stream:
                pass
        assert not isinstance(failed.value, openai.APIStatusError)  # raised from the stream, not a status
        assert failed.value.type == "rate_limit_error"
        with pytest.raises(openai.RateLimitError):
            await plain.chat.completions.create(model=model, messages=HI, stream=True)
        with pytest.raises(openai.RateLimitError):  # a non-stream answer is never committed early
            await client.chat.completions.create(model=model, messages=HI)


async def test_a_client_that_leaves_during_a_silence_cancels_the_upstream_request(
    stack: Stack, edge_url: str, models: None
) -> None:
    model = stack.model("oa-quiet")
    upstream_model = f"quiet:{model}"
    before = stack.upstream.model_stats(upstream_model)
    async with httpx.AsyncClient(timeout=30) as http, http.stream(
        "POST", f"{edge_url}/v1/chat/completions", headers={"authorization": f"Bearer {stack.key}"},
        json={"model": model, "messages": HI, "stream": True},
    ) as reply:
        async for line in reply.aiter_lines():
            if line == ": keep-alive":
                break  # the stream started, no token yet: leave
    deadline = time.monotonic() + 10
    while stack.upstream.model_stats(upstream_model)["disconnects"] == before["disconnects"]:
        assert time.monotonic() < deadline, "the upstream request was never cancelled"
        await asyncio.sleep(0.05)
    assert stack.upstream.model_stats(upstream_model)["completed"] == before["completed"]
