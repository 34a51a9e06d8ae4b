"""Extended thinking through the official Anthropic SDK: asked for, it reaches an Anthropic provider as
asked and the answer's thinking comes back whole and streamed; an earlier answer's thinking goes back to
the provider unchanged and in order; a model that cannot think refuses. A reasoning model behind an
OpenAI-compatible server shows its reasoning to Chat Completions clients, and thinks for Messages
clients."""

from __future__ import annotations

import uuid
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.conftest import TRITON_MODEL, Stack

THINK: Any = {"type": "enabled", "budget_tokens": 1024}


def _sent(stack: Stack, marker: str) -> dict[str, Any]:
    [body] = [r["body"] for r in stack.upstream.requests_for(f"thinking:{stack.model('an-thinking')}")
              if marker in str(r["body"])]
    return body


async def test_thinking_comes_back_whole_and_streamed_alike(claude: anthropic.AsyncAnthropic, stack: Stack) -> None:
    marker = uuid.uuid4().hex
    messages: Any = [{"role": "user", "content": f"GCD of 1071 and 462? {marker}"}]
    whole = await claude.messages.create(model=stack.model("an-thinking"), max_tokens=2048, thinking=THINK,
                                     messages=messages)
    async with claude.messages.stream(model=stack.model("an-thinking"), max_tokens=2048, thinking=THINK,
                                  messages=messages) as stream:
        thought = "".join([e.thinking async for e in stream if e.type == "thinking"])
        final = await stream.get_final_message()
    assert [b.type for b in whole.content] == ["thinking", "redacted_thinking", "text"]
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in whole.content]
    first = whole.content[0]
    assert first.type == "thinking" and first.thinking == thought and "So the GCD is 21." in thought
    assert first.signature.startswith("EqQBCgIYAh")
    assert whole.content[2].type == "text" and whole.content[2].text == "The greatest common divisor of 1071 and 462 is **21**."
    assert (whole.usage.input_tokens, whole.usage.output_tokens) == (58, 217)  # thinking is billed as output
    assert final.usage.output_tokens == 217
    for body in [r["body"] for r in stack.upstream.requests_for(f"thinking:{stack.model('an-thinking')}")
                 if marker in str(r["body"])]:
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_an_earlier_answers_thinking_goes_back_unchanged(claude: anthropic.AsyncAnthropic, stack: Stack) -> None:
    """The conversation continues with the answer the SDK rebuilt: the provider gets its thinking and
    redacted blocks back exactly, before the text, as Anthropic requires."""
    marker = uuid.uuid4().hex
    first: Any = [{"role": "user", "content": f"GCD of 1071 and 462? {marker}"}]
    answer = await claude.messages.create(model=stack.model("an-thinking"), max_tokens=2048, thinking=THINK,
                                      messages=first)
    again = [*first, {"role": "assistant", "content": [b.model_dump() for b in answer.content]},
             {"role": "user", "content": f"And of 462 and 147? {marker}-2"}]
    await claude.messages.create(model=stack.model("an-thinking"), max_tokens=2048, thinking=THINK, messages=again)
    sent = _sent(stack, f"{marker}-2")["messages"]
    assert sent[1] == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": answer.content[0].thinking,  # type: ignore[union-attr]
         "signature": answer.content[0].signature},  # type: ignore[union-attr]
        {"type": "redacted_thinking", "data": answer.content[1].data},  # type: ignore[union-attr]
        {"type": "text", "text": answer.content[2].text},  # type: ignore[union-attr]
    ]}


async def test_a_model_that_cannot_think_refuses(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        await claude.messages.create(model=TRITON_MODEL, max_tokens=16, thinking={"type": "adaptive"},
                                     messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "extended thinking is not supported" in str(refused.value)


async def test_a_reasoning_model_behind_an_openai_compatible_server_thinks_for_a_messages_client(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """Its reasoning comes back as a thinking block without a signature (it is not Anthropic's), whole
    and streamed alike; sent back to a Claude model it is left out, as Anthropic would refuse it."""
    model, marker = stack.model("oa-reasoning-text"), uuid.uuid4().hex
    ask: Any = [{"role": "user", "content": f"Is 97 prime? {marker}"}]
    adaptive: Any = {"type": "adaptive"}
    whole = await claude.messages.create(model=model, max_tokens=256, thinking=adaptive, messages=ask)
    async with claude.messages.stream(model=model, max_tokens=256, thinking=adaptive, messages=ask) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in whole.content] == [b.type for b in final.content] == ["thinking", "text"]
    assert whole.content[0].type == "thinking" and final.content[0].type == "thinking"
    assert whole.content[0].thinking == final.content[0].thinking and whole.content[0].thinking
    assert whole.content[0].signature == ""
    [sent] = [r["body"] for r in stack.upstream.requests_for(f"reasoning-text:{model}") if marker in str(r["body"])][:1]
    assert "thinking" not in sent  # no budget to give an OpenAI-compatible server
    again: Any = [*ask, {"role": "assistant", "content": [b.model_dump() for b in whole.content]},
                  {"role": "user", "content": f"And 91? {marker}"}]
    await claude.messages.create(model=stack.model("an-ok"), max_tokens=64, messages=again)
    [back] = [r["body"] for r in stack.upstream.requests_for(f"ok:{stack.model('an-ok')}") if marker in str(r["body"])]
    answer = back["messages"][1]
    assert answer["role"] == "assistant" and answer["content"] == whole.content[1].text  # type: ignore[union-attr]


async def test_a_budget_that_leaves_no_room_to_answer_is_refused_before_forwarding(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    before = len(stack.upstream.requests_for(f"thinking:{stack.model('an-thinking')}"))
    with pytest.raises(anthropic.BadRequestError) as refused:
        await claude.messages.create(model=stack.model("an-thinking"), max_tokens=1024, thinking=THINK,
                                 messages=[{"role": "user", "content": "Hi"}])
    assert "thinking.budget_tokens" in str(refused.value)
    assert len(stack.upstream.requests_for(f"thinking:{stack.model('an-thinking')}")) == before


async def test_a_reasoning_models_reasoning_reaches_the_openai_apis_clients(
    oa: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """vLLM with a reasoning parser: the OpenAI SDK sees the reasoning, whole and streamed, beside the
    answer (Chat Completions) or as a reasoning item (Responses); a Messages client that did not ask for
    thinking gets the answer alone."""
    model, ask = stack.model("oa-reasoning-text"), [{"role": "user", "content": "17 × 23?"}]
    whole = await oa.chat.completions.create(model=model, messages=ask)  # type: ignore[arg-type]
    stream = await oa.chat.completions.create(model=model, messages=ask, stream=True)  # type: ignore[arg-type]
    deltas = [c.choices[0].delta async for c in stream if c.choices]
    response = await oa.responses.create(model=model, input="17 × 23?")
    message = whole.choices[0].message
    reasoning = (message.model_extra or {}).get("reasoning")
    assert reasoning == "Okay, the user asks for 17 × 23. 17 × 20 = 340, 17 × 3 = 51, so 391."
    assert "".join((d.model_extra or {}).get("reasoning") or "" for d in deltas) == reasoning
    assert message.content == "".join(d.content or "" for d in deltas) == "17 × 23 = 391."
    assert whole.usage is not None and whole.usage.completion_tokens == 68  # the reasoning is billed output
    answer = await claude.messages.create(model=model, max_tokens=100, messages=ask)  # type: ignore[arg-type]
    assert [b.type for b in answer.content] == ["text"] and answer.content[0].text == "17 × 23 = 391."  # type: ignore[union-attr]
    assert [item.type for item in response.output] == ["reasoning", "message"]  # the Responses API's shape
    assert response.output[0].content and response.output[0].content[0].text == reasoning  # type: ignore[union-attr]
    assert response.output_text == "17 × 23 = 391."


async def test_reasoning_effort_makes_a_claude_model_think_for_openai_clients(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    """A Chat Completions client's reasoning_effort on a Claude model: a thinking budget out of the
    output limit (80 % for high), the thinking shown as reasoning and kept whole, signatures included,
    as reasoning_details; streamed pieces join to the same blocks."""
    model, marker = stack.model("an-thinking"), uuid.uuid4().hex
    ask: Any = [{"role": "user", "content": f"GCD of 1071 and 462? {marker}"}]
    whole = await oa.chat.completions.create(model=model, messages=ask, reasoning_effort="high")
    stream = await oa.chat.completions.create(model=model, messages=ask, reasoning_effort="high", stream=True)
    deltas = [c.choices[0].delta async for c in stream if c.choices]
    message = whole.choices[0].message
    extra = message.model_extra or {}
    assert message.content == "The greatest common divisor of 1071 and 462 is **21**."
    assert "So the GCD is 21." in extra["reasoning"]
    text, redacted = extra["reasoning_details"]
    assert text["type"] == "reasoning.text" and text["text"] == extra["reasoning"] and text["index"] == 0
    assert text["signature"].startswith("EqQBCgIYAh") and text["format"] == "anthropic-claude-v1"
    assert redacted["type"] == "reasoning.encrypted" and redacted["data"] and redacted["index"] == 1
    pieces = [p for d in deltas for p in (d.model_extra or {}).get("reasoning_details") or []]
    assert "".join(p.get("text", "") for p in pieces if p["index"] == 0) == text["text"]
    assert [p["signature"] for p in pieces if "signature" in p] == [text["signature"]]
    assert [p["data"] for p in pieces if p["type"] == "reasoning.encrypted"] == [redacted["data"]]
    assert "".join((d.model_extra or {}).get("reasoning") or "" for d in deltas) == extra["reasoning"]
    bodies = [r["body"] for r in stack.upstream.requests_for(f"thinking:{model}") if marker in str(r["body"])]
    assert len(bodies) == 2
    for body in bodies:
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 3276}  # 80 % of the model's 4,096
        assert "reasoning_effort" not in body


async def test_reasoning_details_sent_back_reach_claude_as_its_blocks(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    """The answer's message, sent back as the SDK returned it: its signed and redacted blocks go to
    the provider ahead of its text, unchanged, as Anthropic requires in a tool loop."""
    model, marker = stack.model("an-thinking"), uuid.uuid4().hex
    first: Any = [{"role": "user", "content": f"GCD of 1071 and 462? {marker}"}]
    answer = await oa.chat.completions.create(model=model, messages=first, reasoning_effort="low")
    kept = answer.choices[0].message.model_dump(exclude_none=True)
    again = [*first, kept, {"role": "user", "content": f"And of 462 and 147? {marker}-2"}]
    await oa.chat.completions.create(model=model, messages=again, reasoning_effort="low")
    details = kept["reasoning_details"]
    sent = _sent(stack, f"{marker}-2")["messages"]
    assert sent[1] == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": details[0]["text"], "signature": details[0]["signature"]},
        {"type": "redacted_thinking", "data": details[1]["data"]},
        {"type": "text", "text": kept["content"]},
    ]}


async def test_sampling_a_thinking_claude_cannot_take_is_refused_before_forwarding(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    model = stack.model("an-thinking")
    before = len(stack.upstream.requests_for(f"thinking:{model}"))
    with pytest.raises(openai.BadRequestError) as refused:
        await oa.chat.completions.create(model=model, reasoning_effort="medium", temperature=0.2,
                                         messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.body["param"] == "temperature"  # type: ignore[index]
    assert "thinking runs at temperature 1" in refused.value.message
    assert len(stack.upstream.requests_for(f"thinking:{model}")) == before


async def test_a_responses_client_keeps_claudes_thinking_in_encrypted_content(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    """A stateless Responses client (store false, include reasoning.encrypted_content) gets each of a
    Claude model's blocks whole in its reasoning item, streamed or not, and sending the output back
    hands the provider the blocks unchanged, ahead of the text."""
    model, marker = stack.model("an-thinking"), uuid.uuid4().hex
    ask = f"GCD of 1071 and 462? {marker}"
    include: Any = ["reasoning.encrypted_content"]
    whole = await oa.responses.create(model=model, input=ask, reasoning={"effort": "low"}, store=False,
                                      include=include)
    async with oa.responses.stream(model=model, input=ask, reasoning={"effort": "low"}, include=include) as s:
        streamed = await s.get_final_response()
    plain = await oa.responses.create(model=model, input=ask, reasoning={"effort": "low"})
    again: Any = [{"role": "user", "content": ask}, *[i.model_dump(exclude_none=True) for i in whole.output],
                  {"role": "user", "content": f"And of 462 and 147? {marker}-2"}]
    await oa.responses.create(model=model, input=again, reasoning={"effort": "low"}, include=include)
    assert [i.type for i in whole.output] == ["reasoning", "reasoning", "message"]
    sealed = [i.encrypted_content for i in whole.output if i.type == "reasoning"]
    assert all(s and s.startswith("tg1.") for s in sealed)
    assert [i.encrypted_content for i in streamed.output if i.type == "reasoning"] == sealed
    assert [getattr(i, "encrypted_content", None) for i in plain.output] == [None, None, None]  # not asked for
    thought = whole.output[0].content[0].text  # type: ignore[union-attr,index]
    sent = _sent(stack, f"{marker}-2")["messages"][1]
    assert sent["role"] == "assistant" and [b["type"] for b in sent["content"]] == [
        "thinking", "redacted_thinking", "text"]
    assert sent["content"][0]["thinking"] == thought and sent["content"][0]["signature"].startswith("EqQBCgIYAh")
    assert sent["content"][2]["text"] == whole.output_text
