"""The official Anthropic Python SDK against the platform (x-api-key auth, Messages API)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import anthropic
import pytest

from tests.e2e.conftest import TRITON_MODEL, Stack


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[anthropic.AsyncAnthropic]:
    base = stack.base_url.removesuffix("/v1")
    async with anthropic.AsyncAnthropic(base_url=base, api_key=stack.key, max_retries=0) as sdk:
        yield sdk


async def test_messages_non_stream_on_triton(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=TRITON_MODEL, max_tokens=6, system="Be brief.", messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text
    assert 0 < message.usage.output_tokens <= 6 and message.usage.input_tokens > 0


async def test_messages_stream_on_triton(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model="smollm2", max_tokens=5, messages=[{"role": "user", "content": "Count"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]
    assert final.usage.output_tokens == 5 and final.stop_reason == "max_tokens"


async def test_messages_through_an_anthropic_provider(client: anthropic.AsyncAnthropic, stack: Stack) -> None:
    message = await client.messages.create(
        model=stack.model("an-ok"), max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    )
    async with client.messages.stream(
        model=stack.model("an-ok"), max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    ) as stream:
        final = await stream.get_final_message()
    assert message.content[0].text == final.content[0].text  # type: ignore[union-attr]
    assert message.usage.model_dump() == final.usage.model_dump()
    assert message.usage.output_tokens > 0


async def test_overloaded_provider_is_529_style_overloaded_error(client: anthropic.AsyncAnthropic, stack: Stack) -> None:
    with pytest.raises(anthropic.APIStatusError) as err:
        await client.messages.create(model=stack.model("an-overloaded"), max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert err.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_prompt_cache_breakpoints_reach_an_anthropic_provider_where_the_client_put_them(
    client: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """A document cached apart from the question after it: the provider must see the same blocks and
    breakpoints, or the cache never hits and the customer pays full input price on every call."""
    marker = uuid.uuid4().hex
    document = f"A long reference document {marker}."
    await client.messages.create(
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


async def test_the_stop_sequence_that_ended_the_answer_reaches_the_client(
    client: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    model, stops = stack.model("an-stop-sequence"), ["\n\nHuman:"]
    message = await client.messages.create(model=model, max_tokens=100, stop_sequences=stops,
                                           messages=[{"role": "user", "content": "Hello"}])
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "\n\nHuman:")
    async with client.messages.stream(model=model, max_tokens=100, stop_sequences=stops,
                                      messages=[{"role": "user", "content": "Hello"}]) as stream:
        final = await stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "\n\nHuman:")
