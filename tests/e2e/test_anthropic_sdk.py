"""The official Anthropic Python SDK against the platform (x-api-key auth, Messages API)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx
import pytest

from tests.e2e.conftest import TRITON_MODEL, Stack


async def test_messages_non_stream_on_triton(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(
        model=TRITON_MODEL, max_tokens=6, system="Be brief.", messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text
    assert 0 < message.usage.output_tokens <= 6 and message.usage.input_tokens > 0


async def test_messages_stream_on_triton(claude: anthropic.AsyncAnthropic) -> None:
    async with claude.messages.stream(
        model="smollm2", max_tokens=5, messages=[{"role": "user", "content": "Count"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]
    assert final.usage.output_tokens == 5 and final.stop_reason == "max_tokens"


async def test_messages_through_an_anthropic_provider(claude: anthropic.AsyncAnthropic, stack: Stack) -> None:
    message = await claude.messages.create(
        model=stack.model("an-ok"), max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    )
    async with claude.messages.stream(
        model=stack.model("an-ok"), max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    ) as stream:
        final = await stream.get_final_message()
    assert message.content[0].text == final.content[0].text  # type: ignore[union-attr]
    assert message.usage.model_dump() == final.usage.model_dump()
    assert message.usage.output_tokens > 0


async def test_overloaded_provider_is_529_style_overloaded_error(claude: anthropic.AsyncAnthropic, stack: Stack) -> None:
    with pytest.raises(anthropic.APIStatusError) as err:
        await claude.messages.create(model=stack.model("an-overloaded"), max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert err.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_prompt_cache_breakpoints_reach_an_anthropic_provider_where_the_client_put_them(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """A document cached apart from the question after it: the provider must see the same blocks and
    breakpoints, or the cache never hits and the customer pays full input price on every call."""
    marker = uuid.uuid4().hex
    document = f"A long reference document {marker}."
    await claude.messages.create(
        model=stack.model("an-ok"), max_tokens=50,
        system=[{"type": "text", "text": "Answer from the document.",
                 "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[{"role": "user", "content": [
            {"type": "text", "text": document, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "What does it say?"},
        ]}],
    )
    [sent] = [r["body"] for r in stack.upstream.requests_for(f"ok:{stack.model('an-ok')}")
              if marker in json.dumps(r["body"])]
    assert sent["system"] == [{"type": "text", "text": "Answer from the document.",
                               "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert sent["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": document, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "\nWhat does it say?"},
    ]}]


async def test_automatic_caching_reaches_an_anthropic_provider_on_the_last_block(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """A top-level cache_control: the provider sees it where Anthropic would put it, the last block;
    a model elsewhere answers as if it were not there (caching is the provider's saving, not a need)."""
    marker = uuid.uuid4().hex
    ask: Any = [{"role": "user", "content": f"A long document {marker}."},
                {"role": "assistant", "content": "Read."}, {"role": "user", "content": "Summarise it."}]
    await claude.messages.create(model=stack.model("an-ok"), max_tokens=50, messages=ask,
                                 cache_control={"type": "ephemeral"})
    [sent] = [r["body"] for r in stack.upstream.requests_for(f"ok:{stack.model('an-ok')}")
              if marker in json.dumps(r["body"])]
    assert sent["messages"][-1] == {"role": "user", "content": [
        {"type": "text", "text": "Summarise it.", "cache_control": {"type": "ephemeral"}}]}
    assert all("cache_control" not in json.dumps(m) for m in sent["messages"][:-1])
    elsewhere = await claude.messages.create(model=TRITON_MODEL, max_tokens=3, messages=ask,
                                             cache_control={"type": "ephemeral"})
    assert elsewhere.usage.output_tokens > 0


async def test_the_stop_sequence_that_ended_the_answer_reaches_the_client(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    model, stops = stack.model("an-stop-sequence"), ["\n\nHuman:"]
    message = await claude.messages.create(model=model, max_tokens=100, stop_sequences=stops,
                                           messages=[{"role": "user", "content": "Hello"}])
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "\n\nHuman:")
    async with claude.messages.stream(model=model, max_tokens=100, stop_sequences=stops,
                                      messages=[{"role": "user", "content": "Hello"}]) as stream:
        final = await stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "\n\nHuman:")


async def test_the_sdk_pages_through_the_model_list_in_anthropics_format(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """The same ids as OpenAI's list (models and aliases the key may call), newest first, three a page:
    the SDK follows after_id forwards and before_id backwards through every page."""
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"{stack.base_url}/models", headers={"authorization": f"Bearer {stack.key}"})
    openai_ids = {m["id"] for m in reply.json()["data"]}
    first = await claude.models.list(limit=3)
    assert len(first.data) == 3 and first.has_more and first.last_id == first.data[-1].id
    listed = [m async for m in await claude.models.list(limit=3)]
    ids = [m.id for m in listed]
    assert len(ids) == len(set(ids)) == len(openai_ids) and set(ids) == openai_ids
    assert [m.created_at for m in listed] == sorted((m.created_at for m in listed), reverse=True)
    backwards = [m.id async for m in await claude.models.list(limit=3, before_id=ids[-1])]
    assert sorted(backwards) == sorted(ids[:-1])
    old = next(m for m in listed if m.id == stack.model("old"))
    assert (old.type, old.lifecycle, old.max_tokens, old.max_input_tokens) == ("model", "deprecated", 1024, 8192)
    assert old.retires_at is not None and old.display_name == stack.model("old")
    assert stack.model("gone") not in ids  # retired: listed only when asked for
    retired = [m async for m in await claude.models.list(lifecycle=["retired"], limit=1000)]
    assert stack.model("gone") in {m.id for m in retired} and {m.lifecycle for m in retired} == {"retired"}


async def test_retrieve_a_model_and_errors_in_anthropics_format(claude: anthropic.AsyncAnthropic, stack: Stack) -> None:
    one = await claude.models.retrieve(TRITON_MODEL)
    assert (one.id, one.lifecycle, one.created_at.year >= 2026) == (TRITON_MODEL, "active", True)
    gone = await claude.models.retrieve(stack.model("gone"))  # kept by name, as Anthropic keeps retired models
    assert gone.lifecycle == "retired" and gone.retires_at is not None
    with pytest.raises(anthropic.NotFoundError):
        await claude.models.retrieve("no-such-model")
    with pytest.raises(anthropic.BadRequestError) as bad_cursor:
        await claude.models.list(after_id="no-such-model")
    assert "after_id" in bad_cursor.value.message
    with pytest.raises(anthropic.BadRequestError):
        await claude.models.list(limit=0)
    base = stack.base_url.removesuffix("/v1")
    async with anthropic.AsyncAnthropic(base_url=base, api_key="tg-not-a-key", max_retries=0) as stranger:
        with pytest.raises(anthropic.AuthenticationError):
            await stranger.models.list()


WEATHER_TOOL = {"name": "get_weather", "description": "Current weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


async def test_the_sdk_counts_tokens_through_an_anthropic_provider(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """``messages.count_tokens`` gets the provider's count; what reached the provider is the prompt
    side of the request in Anthropic's shape, under the deployment's model name."""
    model = stack.model("an-ok")
    before = stack.upstream.model_stats(f"ok:{model}")
    counted = await claude.messages.count_tokens(
        model=model, system="Be brief.", messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert counted.input_tokens == 2095  # the recorded answer of Anthropic's count_tokens
    seen = stack.upstream.requests_for(f"ok:{model}")[-1]
    assert seen["path"] == "/v1/messages/count_tokens"
    assert seen["body"] == {"model": f"ok:{model}", "system": "Be brief.", "tools": [WEATHER_TOOL],
                            "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    after = stack.upstream.model_stats(f"ok:{model}")
    assert after["requests"] == before["requests"] + 1 and after["completed"] == before["completed"] + 1


async def test_the_sdk_counts_tokens_on_triton_as_a_generation_of_the_same_prompt_does(
    claude: anthropic.AsyncAnthropic
) -> None:
    """Counted by the preprocessing model beside the ensemble (tokenization only), with the chat
    template applied as for a generation: the count is the input_tokens a generation reports."""
    system, messages = "Be brief.", [{"role": "user", "content": "Tell me about the sea, in one line."}]
    counted = await claude.messages.count_tokens(
        model=TRITON_MODEL, system=system, messages=messages  # type: ignore[arg-type]
    )
    generated = await claude.messages.create(
        model=TRITON_MODEL, system=system, messages=messages, max_tokens=1  # type: ignore[arg-type]
    )
    assert counted.input_tokens == generated.usage.input_tokens > 10


async def test_the_sdk_counts_tokens_on_a_vllm_server_with_its_tokenize(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    model = stack.model("oa-tokenize")
    counted = await claude.messages.count_tokens(
        model=model, system="Be brief.", messages=[{"role": "user", "content": "Hi"}]  # type: ignore[arg-type]
    )
    assert counted.input_tokens == 36  # the recorded answer of vLLM's /tokenize
    seen = stack.upstream.requests_for(f"ok:{model}")[-1]
    assert seen["path"] == "/tokenize" and seen["body"]["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


async def test_counting_tokens_refused_and_failing_in_anthropics_format(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    hi = [{"role": "user", "content": "Hi"}]
    with pytest.raises(anthropic.BadRequestError) as cannot:  # an OpenAI-compatible deployment cannot count
        await claude.messages.count_tokens(model=stack.model("oa-ok"), messages=hi)  # type: ignore[arg-type]
    assert cannot.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "Counting tokens is not supported for this model" in cannot.value.message
    with pytest.raises(anthropic.NotFoundError):
        await claude.messages.count_tokens(model="no-such-model", messages=hi)  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError) as generating:  # count_tokens takes no max_tokens
        await claude.messages.count_tokens(
            model=stack.model("an-ok"), messages=hi, extra_body={"max_tokens": 5}  # type: ignore[arg-type]
        )
    assert "max_tokens" in generating.value.message
    with pytest.raises(anthropic.BadRequestError) as empty:
        await claude.messages.count_tokens(model=stack.model("an-ok"), messages=[])
    assert "messages" in empty.value.message
    with pytest.raises(anthropic.RateLimitError) as limited:  # the provider's 429, in our words
        await claude.messages.count_tokens(model=stack.model("an-rate-limited"), messages=hi)  # type: ignore[arg-type]
    assert limited.value.response.headers.get("retry-after") == "3"
    base = stack.base_url.removesuffix("/v1")
    async with anthropic.AsyncAnthropic(base_url=base, api_key="sk-wrong", max_retries=0) as stranger:
        with pytest.raises(anthropic.AuthenticationError):
            await stranger.messages.count_tokens(model=stack.model("an-ok"), messages=hi)  # type: ignore[arg-type]


async def test_the_sdk_reads_the_request_id_and_rate_limits_in_anthropics_headers(
    claude: anthropic.AsyncAnthropic, oa: Any
) -> None:
    """Anthropic's ``request-id`` (the SDK's ``_request_id``, an error's ``request_id``) and its
    ``anthropic-ratelimit-*`` headers for the stack key's limits (600 RPM, 200k TPM), never OpenAI's;
    OpenAI clients keep OpenAI's headers only."""
    raw = await claude.messages.with_raw_response.create(
        model=TRITON_MODEL, max_tokens=3, messages=[{"role": "user", "content": "Hi"}]
    )
    message = await raw.parse()
    assert message._request_id == raw.headers["request-id"] == raw.headers["x-request-id"]
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "600"
    assert raw.headers["anthropic-ratelimit-tokens-limit"] == "200000"
    assert 0 <= int(raw.headers["anthropic-ratelimit-requests-remaining"]) < 600
    reset = datetime.strptime(raw.headers["anthropic-ratelimit-requests-reset"], "%Y-%m-%dT%H:%M:%SZ")
    assert 0 < reset.replace(tzinfo=UTC).timestamp() - time.time() <= 61  # the 60 s window, rounded up
    assert not [h for h in raw.headers if h.startswith("x-ratelimit-")]
    with pytest.raises(anthropic.BadRequestError) as bad:
        await claude.messages.create(model=TRITON_MODEL, max_tokens=0, messages=[{"role": "user", "content": "Hi"}])
    assert bad.value.request_id is not None and bad.value.request_id.startswith("req_")
    models = await claude.models.with_raw_response.list()
    assert models.headers["request-id"] == models.headers["x-request-id"]  # anthropic-version: its dialect

    chat = await oa.chat.completions.with_raw_response.create(
        model=TRITON_MODEL, max_tokens=3, messages=[{"role": "user", "content": "Hi"}]
    )
    assert chat.headers["x-ratelimit-limit-requests"] == "600" and "request-id" not in chat.headers
    assert not [h for h in chat.headers if h.startswith("anthropic-")]
