"""Answers of several choices through the official OpenAI SDK: Chat Completions' and legacy completions'
``n`` and a completion's batch of prompts, on Triton, an OpenAI-compatible provider and Anthropic's API
alike; each choice its own generation (seeded ``seed + i``), the whole and the streamed answer the same,
one usage event with every choice's tokens; a client that leaves stops every choice's generation."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest

from tests.e2e.conftest import TRITON_MODEL, Stack, read_then_leave, upstream_disconnects, usage_events
from tests.upstream.harness import recorded_completion_logprobs

ASK: Any = [{"role": "user", "content": "Name a colour."}]


async def test_n_choices_on_triton_are_the_answers_of_their_seeds_whole_and_streamed(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    seed = uuid.uuid4().int % 2**31
    ask: Any = {"model": TRITON_MODEL, "messages": ASK, "max_tokens": 6, "temperature": 1.0, "top_p": 0.95}
    raw = await oa.chat.completions.with_raw_response.create(**ask, n=3, seed=seed)
    whole = raw.parse()
    alone = [await oa.chat.completions.create(**ask, seed=seed + i) for i in range(3)]
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert [c.message.content for c in whole.choices] == [a.choices[0].message.content for a in alone]
    assert len({c.message.content for c in whole.choices}) > 1  # seeded apart: not three copies of one
    usages = [a.usage for a in alone if a.usage is not None]
    assert whole.usage is not None and len(usages) == 3
    assert whole.usage.prompt_tokens == sum(u.prompt_tokens for u in usages)  # each choice read its prompt
    assert whole.usage.completion_tokens == sum(u.completion_tokens for u in usages)

    chunks = [c async for c in await oa.chat.completions.create(
        **ask, n=3, seed=seed, stream=True, stream_options={"include_usage": True})]
    texts: list[str] = ["", "", ""]
    reasons: list[str | None] = [None, None, None]
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            reasons[choice.index] = reasons[choice.index] or choice.finish_reason
    assert texts == [c.message.content for c in whole.choices]
    assert reasons == [c.finish_reason for c in whole.choices]
    [usage] = [c.usage for c in chunks if c.usage is not None]  # one usage chunk, every choice's tokens
    assert usage.total_tokens == whole.usage.total_tokens and len({c.id for c in chunks}) == 1

    request_id = raw.headers["x-request-id"]
    [event] = (await usage_events(stack, {request_id}))[request_id]  # one request: one event
    assert event.status == "ok" and event.streamed is False
    assert event.tokens.input + event.tokens.cached_input == whole.usage.prompt_tokens
    assert event.tokens.output == whole.usage.completion_tokens


async def test_n_choices_from_a_provider_are_n_requests_seeded_apart(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    model, seed = stack.model("oa-ok"), uuid.uuid4().int % 2**31
    one = await oa.chat.completions.create(model=model, messages=ASK, seed=seed)
    raw = await oa.chat.completions.with_raw_response.create(model=model, messages=ASK, n=3, seed=seed)
    whole = raw.parse()
    sent = [r["body"] for r in stack.upstream.requests_for(f"ok:{model}") if r["body"].get("seed", -1) - seed in (0, 1, 2)]
    assert sorted(b["seed"] for b in sent) == [seed, seed, seed + 1, seed + 2]  # the one-choice request, then three
    assert all("n" not in b for b in sent)  # one choice per provider request
    assert [(c.index, c.message.content) for c in whole.choices] == [(i, one.choices[0].message.content) for i in range(3)]
    assert one.usage is not None and whole.usage is not None
    assert whole.usage.prompt_tokens == 3 * one.usage.prompt_tokens
    assert whole.usage.completion_tokens == 3 * one.usage.completion_tokens
    details, one_details = whole.usage.prompt_tokens_details, one.usage.prompt_tokens_details
    assert details and one_details and details.cached_tokens == 3 * (one_details.cached_tokens or 0)
    request_id = raw.headers["x-request-id"]
    [event] = (await usage_events(stack, {request_id}))[request_id]
    assert (event.tokens.input, event.tokens.cached_input, event.tokens.output) == (
        3 * (one.usage.prompt_tokens - (one_details.cached_tokens or 0)), 3 * (one_details.cached_tokens or 0),
        3 * one.usage.completion_tokens)


async def test_n_choices_on_claude_whole_and_streamed(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    """Anthropic's API has no ``n``: each choice is its own Messages request."""
    model = stack.model("an-ok")
    before = stack.upstream.model_stats(f"ok:{model}")["requests"]
    whole = await oa.chat.completions.create(model=model, messages=ASK, n=2, max_tokens=50)
    stream = await oa.chat.completions.create(model=model, messages=ASK, n=2, max_tokens=50, stream=True)
    texts = ["", ""]
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert [c.message.content for c in whole.choices] == texts and texts[0] == texts[1] != ""
    assert stack.upstream.model_stats(f"ok:{model}")["requests"] == before + 4


PROMPTS = [[791, 6864, 315, 9822, 374], [791, 6864, 315]]


async def test_a_batch_of_prompts_is_scored_as_evaluation_harnesses_send_it(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    """lm-evaluation-harness's batched loglikelihood request: several token-id prompts, echoed with
    their log probabilities; one choice per prompt, in the prompts' order."""
    model, seed = stack.model("oa-logprobs"), uuid.uuid4().int % 2**31
    ask: Any = {"model": model, "prompt": PROMPTS, "echo": True, "logprobs": 2, "max_tokens": 2, "seed": seed}
    whole = await oa.completions.create(**ask)
    text, recorded = recorded_completion_logprobs("logprobs")
    assert [(c.index, c.text) for c in whole.choices] == [(0, text), (1, text)]
    assert all(c.logprobs is not None and c.logprobs.tokens == recorded["tokens"] for c in whole.choices)
    sent = [r["body"] for r in stack.upstream.requests_for(f"logprobs:{model}") if r["body"].get("seed") == seed]
    assert sorted(b["prompt"] for b in sent) == sorted(PROMPTS)  # each prompt its own request
    streamed: dict[int, str] = {}
    async for chunk in await oa.completions.create(**ask, n=2, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + choice.text
    assert streamed == {0: text, 1: text, 2: text, 3: text}  # two prompts, two choices each


async def test_a_client_that_leaves_stops_every_choice(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    model = stack.model("oa-slow-stream")
    before = stack.upstream.model_stats(f"slow-stream:{model}")
    await read_then_leave(await oa.chat.completions.create(model=model, messages=ASK, n=2, stream=True), 4)
    stats = await upstream_disconnects(stack, f"slow-stream:{model}", before["disconnects"] + 2)
    assert stats["disconnects"] == before["disconnects"] + 2 and stats["completed"] == before["completed"]


async def test_choices_that_all_fail_are_one_error_and_bill_nothing(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    with pytest.raises(openai.RateLimitError) as failed:
        await oa.chat.completions.with_raw_response.create(model=stack.model("oa-rate-limited"), messages=ASK, n=2)
    request_id = failed.value.response.headers["x-request-id"]
    [event] = (await usage_events(stack, {request_id}))[request_id]
    assert event.status == "error" and event.tokens.input == event.tokens.output == 0
