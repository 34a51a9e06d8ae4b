"""usage.v1 from the edge, end to end on the real servers: one event per admitted request, whatever
way it ended, and none lost (or doubled) while Kafka is down."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from services.common.events.usage import UsageEventV1
from tests.e2e.conftest import TRITON_MODEL, Stack, all_usage_events, usage_events

HI = [{"role": "user", "content": "hi"}]


def _auth(stack: Stack) -> dict[str, str]:
    return {"authorization": f"Bearer {stack.key}"}


async def test_every_admitted_request_has_exactly_one_usage_event(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, headers=_auth(stack), timeout=60) as client:
        ok = await client.post("/chat/completions", json={"model": stack.model("oa-ok"), "messages": HI})
        streamed = await client.post("/chat/completions", json={
            "model": TRITON_MODEL, "messages": HI, "max_tokens": 4, "stream": True,
        })
        failed = await client.post("/chat/completions", json={"model": stack.model("oa-server-error"), "messages": HI})
        refused = await client.post("/chat/completions", json={"model": "no-such-model", "messages": HI})
    assert (ok.status_code, streamed.status_code, failed.status_code, refused.status_code) == (200, 200, 502, 404)
    ids = {r.headers["x-request-id"]: r for r in (ok, streamed, failed)}
    events = await usage_events(stack, set(ids))
    assert {k: len(v) for k, v in events.items()} == dict.fromkeys(ids, 1)
    by = {rid: evs[0] for rid, evs in events.items()}

    first = by[ok.headers["x-request-id"]]
    usage = ok.json()["usage"]
    assert first.status == "ok" and first.streamed is False
    assert first.tokens.input + first.tokens.cached_input == usage["prompt_tokens"]
    assert first.tokens.output == usage["completion_tokens"] and first.price_version == f"oa-ok-{stack.tag}-price"
    assert first.provider == "openai" and first.deployment_id == f"oa-ok-{stack.tag}-dep"

    stream = by[streamed.headers["x-request-id"]]
    assert stream.status == "ok" and stream.streamed and stream.provider == "triton"
    assert stream.tokens.input > 0 and 1 <= stream.tokens.output <= 4 and stream.ttft_ms is not None

    error = by[failed.headers["x-request-id"]]
    assert error.status == "error" and error.tokens.output == 0 and error.tokens.input == 0
    assert refused.headers["x-request-id"] not in events  # never admitted: no usage


async def _leave_after(stack: Stack, body: dict[str, object], pieces: int) -> tuple[str, int]:
    """Stream a chat completion and hang up once ``pieces`` pieces of text have arrived: the request
    id, and how many pieces the client read."""
    received = 0
    async with httpx.AsyncClient(base_url=stack.base_url, headers=_auth(stack), timeout=60) as client:
        async with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as reply:
            request_id = reply.headers["x-request-id"]
            async for line in reply.aiter_lines():
                if line.startswith("data: {"):
                    choices = json.loads(line[6:])["choices"]
                    received += bool(choices and choices[0]["delta"].get("content"))
                if received >= pieces:
                    break
    return request_id, received


async def test_a_client_that_leaves_mid_stream_is_billed_for_what_was_generated(stack: Stack) -> None:
    request_id, received = await _leave_after(
        stack, {"model": TRITON_MODEL, "messages": HI, "max_tokens": 200, "temperature": 1.0}, 5)
    events = await usage_events(stack, {request_id})
    [event] = events[request_id]
    assert event.status == "client_disconnected"
    assert event.tokens.input > 0  # Triton says how long the prompt was with its first response
    # the router's running count when the edge saw the client go: at least what the client read,
    # and short of the 200 it asked for (the generation was really cancelled)
    assert received <= event.tokens.output < 200


async def test_a_cut_stream_is_billed_its_prompt_where_the_server_says_or_counts_it(stack: Stack) -> None:
    """OpenAI-compatible servers report usage in the final chunk, which a stream the client leaves
    never reaches. A deployment with continuous_usage (vLLM) says the prompt's tokens with the first
    chunk; one that can count (vLLM's /tokenize, OpenAI's /responses/input_tokens) is asked to once
    the stream is stopped; a server that can do neither leaves the prompt unbilled."""
    models = ("oa-slow-stream", "oa-continuous-usage-slow", "oa-slow-stream-tokenize", "oa-slow-stream-input_tokens")
    request_ids = {
        model: (await _leave_after(stack, {"model": stack.model(model), "messages": HI}, 3))[0] for model in models
    }
    events = await usage_events(stack, set(request_ids.values()))
    by_model = {model: events[request_id] for model, request_id in request_ids.items()}
    assert all(len(found) == 1 and found[0].status == "client_disconnected" for found in by_model.values())
    inputs = {model: found[0].tokens.input for model, found in by_model.items()}
    assert inputs == {"oa-slow-stream": 0,  # never said, and no way to count
                      "oa-continuous-usage-slow": 2006,  # said with the first chunk
                      "oa-slow-stream-tokenize": 36, "oa-slow-stream-input_tokens": 41}  # the recorded counts
    assert all(found[0].tokens.output >= 3 for found in by_model.values())
    counted = [r for r in stack.upstream.stats()["requests"]
               if r["path"] in ("/tokenize", "/v1/responses/input_tokens") and r["model"].startswith("slow-stream:")]
    assert len(counted) == 2 and all(r["body"].get("messages") or r["body"].get("input") for r in counted)


async def _leave_non_stream(stack: Stack, body: dict[str, object], after: float) -> list[UsageEventV1]:
    """Ask for a non-streamed answer and hang up after ``after`` seconds, before any answer: the usage
    events of the model's non-streamed requests whose client left (one per test: no other test here
    leaves a non-streamed request of the same model)."""
    async with httpx.AsyncClient(base_url=stack.base_url, headers=_auth(stack), timeout=after) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/chat/completions", json=body)
    left_at = time.monotonic()
    while not (events := [
        e for e in await all_usage_events(stack)
        if e.model_requested == body["model"] and not e.streamed and e.status == "client_disconnected"
    ]):
        assert time.monotonic() - left_at < 30, "no usage event for the request whose client left"
        await asyncio.sleep(0.2)
    return events


async def test_a_non_stream_client_that_leaves_before_any_output_is_billed_nothing(stack: Stack) -> None:
    """The client gives up on a model that answers after 5 s. The generation is cancelled before the
    provider said anything: the request is recorded as client_disconnected with zero tokens, at once,
    instead of running its course and being billed for an answer nobody read."""
    model = stack.model("oa-slow")
    [event] = await _leave_non_stream(stack, {"model": model, "messages": HI}, 0.5)
    assert event.status == "client_disconnected" and event.streamed is False
    assert event.tokens.input == event.tokens.output == 0 and event.ttft_ms is None
    assert event.provider == "openai" and event.deployment_id == f"{model}-dep"  # who was working on it
    assert event.duration_ms < 4500  # ended when the client left, not after the model's 5 s


@pytest.mark.parametrize("backend", ["anthropic", "triton"])
async def test_a_non_stream_client_that_leaves_mid_answer_is_billed_what_was_generated(
    stack: Stack, backend: str
) -> None:
    """The client saw nothing of the answer, but the backend read the prompt and generated until the
    cancel, and the provider bills the operator for that: so is the client. The router stops the
    generation and accounts for it; the edge bills that account."""
    body: dict[str, object] = {"model": stack.model("an-slow-stream"), "messages": HI}  # 90 deltas, 50 ms apart
    if backend == "triton":
        # the test model makes about 300 tokens a second: 2,000 take longer than the client waits
        body = {"model": TRITON_MODEL, "messages": HI, "max_tokens": 2000, "temperature": 1.0}
    [event] = await _leave_non_stream(stack, body, 0.6)
    assert event.ttft_ms is None  # the client got nothing
    if backend == "anthropic":
        assert (event.provider, event.tokens.input) == ("anthropic", 44)  # said before its first text
        assert 3 <= event.tokens.output < 90
    else:
        assert event.provider == "triton" and event.tokens.input > 0  # with its first response
        assert 1 <= event.tokens.output < 2000


async def test_usage_survives_kafka_being_down_for_30_seconds(stack: Stack) -> None:
    platform = stack.platform
    sent: list[str] = []
    platform.bus.stop()
    try:
        async with httpx.AsyncClient(base_url=stack.base_url, headers=_auth(stack), timeout=60) as client:
            started = time.monotonic()
            while time.monotonic() - started < 30:
                reply = await client.post("/chat/completions", json={"model": stack.model("oa-ok"), "messages": HI})
                assert reply.status_code == 200, reply.text  # serving goes on: keys and catalog are in memory
                sent.append(reply.headers["x-request-id"])
                await asyncio.sleep(0.5)
    finally:
        platform.bus.start()
        platform.bus.wait_ready()
    assert len(sent) >= 40
    events = await usage_events(stack, set(sent), timeout=60)
    assert set(events) == set(sent), f"{len(set(sent) - set(events))} usage events lost"
    assert all(len(v) == 1 for v in events.values()), "an event was sent twice"
