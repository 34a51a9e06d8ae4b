"""Extended thinking through the router's backends: Anthropic streams it and takes earlier turns' blocks
back in place; backends without it refuse a request that asks for it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from services.common.errors import UnsupportedByBackend
from services.router.backends import (
    ChatTurn,
    GenerationRequest,
    Outcome,
    Sampling,
    ThinkingBlock,
    ThinkingConfig,
    ThinkingDelta,
    ToolCall,
)
from services.router.backends.anthropic import AnthropicBackend
from services.router.backends.anthropic_messages import to_messages
from services.router.backends.http import ProviderHTTP, ReadTimeouts
from services.router.backends.openai_compat import OpenAICompatBackend
from services.router.backends.sse import Event
from services.router.backends.triton import TritonBackend
from tests.router.draining import drain
from tests.router.test_anthropic import read_in_one
from tests.upstream.harness import UpstreamServer

FIXTURE = Path(__file__).parents[1] / "upstream" / "fixtures" / "anthropic" / "messages-thinking.sse"
KEY_ENV = "TOLLGATE_TEST_ANTHROPIC_KEY"
THINK = ThinkingConfig("enabled", budget_tokens=1024)


def recorded() -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("data: ")) for line in FIXTURE.read_text().splitlines()
            if line.startswith("data: ")]


def chat(model: str, turns: tuple[ChatTurn, ...] | None = None, thinking: ThinkingConfig | None = THINK,
         ) -> GenerationRequest:
    return GenerationRequest(
        request_id="req-" + uuid.uuid4().hex, upstream_model=model, sampling=Sampling(max_tokens=2048),
        messages=turns or (ChatTurn("user", "GCD of 1071 and 462?"),), thinking=thinking,
    )


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "sk-ant-api03-" + uuid.uuid4().hex
    monkeypatch.setenv(KEY_ENV, value)
    return value


def anthropic(upstream: UpstreamServer, http: ProviderHTTP) -> AnthropicBackend:
    return AnthropicBackend(upstream.anthropic_base_url, KEY_ENV, http, timeouts=ReadTimeouts(5.0, 5.0))


@pytest.mark.parametrize("scenario", ["thinking", "thinking-one-write"])
async def test_thinking_streams_as_it_comes_and_finishes_whole(upstream, http, key, tag, scenario) -> None:
    """Each piece of thinking as Anthropic sent it, the signature at the block's end, the redacted block
    whole; joined, they are the blocks of the Finish, at the start of the answer (offset 0)."""
    events = recorded()
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    thoughts = [d["thinking"] for d in deltas if d["type"] == "thinking_delta"]
    [signature] = [d["signature"] for d in deltas if d["type"] == "signature_delta"]
    [redacted] = [e["content_block"]["data"] for e in events if e["type"] == "content_block_start"
                  and e["content_block"]["type"] == "redacted_thinking"]
    outcome, thinking = Outcome(), []
    got, error = await drain(anthropic(upstream, http).generate(chat(f"{scenario}:{tag}"), outcome),
                             outcome, [], thinking)
    assert error is None
    assert got == [d["text"] for d in deltas if d["type"] == "text_delta"]
    assert thinking == [ThinkingDelta(0), *(ThinkingDelta(0, thinking=t) for t in thoughts),
                        ThinkingDelta(0, signature=signature), ThinkingDelta(1, redacted=redacted)]
    assert outcome.thinking == [ThinkingBlock("".join(thoughts), signature), ThinkingBlock(redacted=redacted)]
    assert (outcome.output_tokens, outcome.finish_reason) == (217, "stop")  # thinking is output, billed as such
    [seen] = upstream.requests_for(f"{scenario}:{tag}")
    assert seen["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_adaptive_thinking_goes_out_with_its_display(upstream, http, key, tag) -> None:
    request = chat(f"thinking:{tag}", thinking=ThinkingConfig("adaptive", display="omitted"))
    outcome = Outcome()
    _, error = await drain(anthropic(upstream, http).generate(request, outcome), outcome)
    assert error is None
    [seen] = upstream.requests_for(f"thinking:{tag}")
    assert seen["body"]["thinking"] == {"type": "adaptive", "display": "omitted"}


async def test_thinking_after_text_or_a_call_starts_a_batch_of_its_own() -> None:
    """Read together, text and a call then thinking (as interleaved thinking writes them): the thinking
    goes in the next batch, so no delta carries thinking that came after its text, and the block knows
    it came after 3 characters and 1 call."""
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "thinking_delta", "thinking": "Hm"}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "signature_delta", "signature": "s1"}},
        {"type": "content_block_delta", "index": 7, "delta": {"type": "thinking_delta", "thinking": "lost"}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    outcome = Outcome()
    seen = []
    async for batch in read_in_one(events, outcome):
        seen.append((batch, outcome.take_tool_deltas(), outcome.take_thinking_deltas()))
    assert [(b, len(calls), len(thought)) for b, calls, thought in seen] == [(["Hi."], 2, 0), ([], 0, 3)]
    assert outcome.thinking == [ThinkingBlock("Hm", "s1", offset=3, after_calls=1)]
    assert outcome.tool_calls == [ToolCall("toolu_1", "now", "{}")]


def test_an_earlier_turns_thinking_goes_back_where_the_model_wrote_it() -> None:
    """Anthropic checks that thinking comes back unchanged and in order: before the text it preceded,
    inside it where it was, after the call it followed, and a turn of thinking and a call has no text."""
    first, middle, after = ThinkingBlock("plan", "sig-a"), ThinkingBlock(redacted="opaque", offset=6), \
        ThinkingBlock("again", "sig-b", offset=11, after_calls=1)
    turns = (ChatTurn("user", "go"), ChatTurn("assistant", "Let meCheck.", thinking=(first, middle, after)),
             ChatTurn("tool", "12:00", tool_call_id="toolu_1"), ChatTurn("assistant", "", thinking=(first,)),
             ChatTurn("tool", "13:00", tool_call_id="toolu_2"))
    calls = {1: [{"id": "toolu_1", "type": "function", "function": {"name": "now", "arguments": "{}"}}],
             3: [{"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]}
    _, messages = to_messages(turns, calls)
    use = {"type": "tool_use", "name": "now", "input": {}}
    assert messages[1]["content"] == [
        {"type": "thinking", "thinking": "plan", "signature": "sig-a"},
        {"type": "text", "text": "Let me"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Check."},
        {**use, "id": "toolu_1"},
        {"type": "thinking", "thinking": "again", "signature": "sig-b"},
    ]
    assert messages[3]["content"] == [{"type": "thinking", "thinking": "plan", "signature": "sig-a"},
                                      {**use, "id": "toolu_2"}]


async def test_triton_refuses_thinking_and_a_compatible_server_leaves_earlier_blocks_out(upstream, http, tag) -> None:
    """Triton refuses thinking as unsupported, so fallback tries the next deployment and nothing is
    sent; an earlier turn's thinking (another provider's signed record) is left out of what an
    OpenAI-compatible server sees, and the request's thinking config is not sent (it has no budget)."""
    triton = TritonBackend("127.0.0.1:1", "ensemble")
    _, refused = await drain(triton.generate(chat(f"ok:{tag}"), Outcome()))
    assert isinstance(refused, UnsupportedByBackend) and refused.param == "thinking"
    await triton.close()
    turns = (ChatTurn("user", "hi"), ChatTurn("assistant", "Hello", thinking=(ThinkingBlock("x", "sig"),)),
             ChatTurn("user", "again"))
    openai = OpenAICompatBackend(upstream.openai_base_url, None, http)
    _, error = await drain(openai.generate(chat(f"ok:{tag}", turns), Outcome()))
    assert error is None
    [seen] = upstream.requests_for(f"ok:{tag}")
    assert seen["body"]["messages"][1] == {"role": "assistant", "content": "Hello"}
    assert "thinking" not in seen["body"] and "reasoning_effort" not in seen["body"]


async def test_a_messages_client_asking_for_thinking_gets_a_compatible_servers_reasoning(upstream, http, tag) -> None:
    """A Messages client's thinking on a vLLM reasoning model: the reasoning, as one unsigned block."""
    thoughts, texts = recorded_reasoning()
    outcome = Outcome()
    got, error = await drain(OpenAICompatBackend(upstream.openai_base_url, None, http).generate(
        chat(f"reasoning-text:{tag}"), outcome), outcome)
    assert error is None and got == texts
    assert outcome.thinking == [ThinkingBlock("".join(thoughts))] and not outcome.thinking[0].signed


def test_unsigned_thinking_never_goes_back_to_anthropic() -> None:
    """Another model's reasoning (no signature) would be refused by Anthropic: only its own blocks go."""
    turn = ChatTurn("assistant", "Hello", thinking=(ThinkingBlock("theirs"), ThinkingBlock("ours", "sig"),
                                                    ThinkingBlock(redacted="opaque")))
    _, messages = to_messages((ChatTurn("user", "hi"), turn, ChatTurn("user", "again")), {})
    assert messages[1]["content"] == [{"type": "thinking", "thinking": "ours", "signature": "sig"},
                                      {"type": "redacted_thinking", "data": "opaque"},
                                      {"type": "text", "text": "Hello"}]


REASONING_FIXTURE = Path(__file__).parents[1] / "upstream" / "fixtures" / "openai" / "chat-reasoning-text.sse"


def recorded_reasoning() -> tuple[list[str], list[str]]:
    """The recording's reasoning pieces and content pieces."""
    deltas = [json.loads(line.removeprefix("data: "))["choices"] for line in REASONING_FIXTURE.read_text().splitlines()
              if line.startswith("data: {")]
    flat = [c[0]["delta"] for c in deltas if c]
    return [d["reasoning"] for d in flat if d.get("reasoning")], [d["content"] for d in flat if d.get("content")]


@pytest.mark.parametrize("accepts", [True, False])
async def test_a_compatible_servers_reasoning_reaches_a_caller_that_shows_it(upstream, http, tag, accepts) -> None:
    """vLLM with a reasoning parser streams ``reasoning`` before the content: a caller that shows it gets
    each piece as thinking and the whole as one unsigned block; another gets the same text and nothing
    else."""
    thoughts, texts = recorded_reasoning()
    request = replace(chat(f"reasoning-text:{tag}", thinking=None), accepts_reasoning=accepts)
    outcome, thinking = Outcome(), []
    got, error = await drain(OpenAICompatBackend(upstream.openai_base_url, None, http).generate(request, outcome),
                             outcome, [], thinking)
    assert error is None and got == texts
    if accepts:
        assert thinking == [ThinkingDelta(0, thinking=thoughts[0]), *(ThinkingDelta(0, thinking=t) for t in thoughts[1:])]
        assert outcome.thinking == [ThinkingBlock("".join(thoughts))]
    else:
        assert thinking == [] and outcome.thinking == []
    assert outcome.output_tokens == 68


async def test_reasoning_by_either_name_after_a_call_or_text_is_a_new_block_in_a_batch_of_its_own() -> None:
    def chunk(**delta: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": delta}]}

    events = [chunk(reasoning_content="Need the time."), chunk(content="Checking."),
              chunk(tool_calls=[{"index": 0, "id": "call_1", "function": {"name": "now", "arguments": "{}"}}]),
              chunk(reasoning_content="Got it"), chunk(reasoning=", answer."),
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]

    async def batches() -> AsyncGenerator[list[Event], None]:
        yield [Event(event="", data=json.dumps(e)) for e in events] + [Event(event="", data="[DONE]")]

    outcome = Outcome()
    reader = OpenAICompatBackend("http://unused", None, cast(Any, None))._read(batches(), outcome, True, (), True)
    seen = [(batch, len(outcome.take_tool_deltas()), [t.thinking for t in outcome.take_thinking_deltas()])
            async for batch in reader]
    assert seen == [(["Checking."], 1, ["Need the time."]), ([], 0, ["Got it", ", answer."])]
    assert outcome.thinking == [ThinkingBlock("Need the time."),
                                ThinkingBlock("Got it, answer.", offset=9, after_calls=1)]
