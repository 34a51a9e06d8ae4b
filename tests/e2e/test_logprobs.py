"""Log probabilities through the official OpenAI SDK: Chat Completions', the Responses API's and legacy
completions' (with ``echo`` and token-id prompts, as evaluation harnesses score a text), an
OpenAI-compatible provider's,
whole and streamed alike, billed as the provider counted; refused by name, with nothing forwarded,
where no deployment of the model can give them."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest

from tests.e2e.conftest import TRITON_MODEL, Stack, usage_events
from tests.upstream.harness import recorded_completion_logprobs, recorded_logprobs

ASK: Any = [{"role": "user", "content": "Capital of France? One word."}]


async def test_logprobs_come_whole_and_streamed_as_the_provider_gave_them(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    model = stack.model("oa-logprobs")
    whole = await oa.chat.completions.create(model=model, messages=ASK, logprobs=True, top_logprobs=3)
    async with oa.chat.completions.stream(model=model, messages=ASK, logprobs=True, top_logprobs=3) as stream:
        chunks = [e.chunk async for e in stream if e.type == "chunk"]
        final = await stream.get_final_completion()
    expected = recorded_logprobs("logprobs")
    logprobs = whole.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [e.model_dump() for e in logprobs.content] == expected
    assert [t.token for t in logprobs.content] == ["Paris", "."] and len(logprobs.content[0].top_logprobs) == 3
    streamed = [e.model_dump() for c in chunks for ch in c.choices if ch.logprobs and ch.logprobs.content
                for e in ch.logprobs.content]
    assert streamed == expected
    final_logprobs = final.choices[0].logprobs
    assert final_logprobs is not None and [e.model_dump() for e in final_logprobs.content or []] == expected
    assert whole.choices[0].message.content == final.choices[0].message.content == "Paris."
    [plain] = [c.choices[0].logprobs for c in [await oa.chat.completions.create(model=model, messages=ASK)]]
    assert plain is None  # not asked for, not given


async def test_a_model_without_logprobs_refuses_them_by_name(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    marker = uuid.uuid4().hex
    for model in (TRITON_MODEL, stack.model("an-ok")):
        with pytest.raises(openai.BadRequestError) as refused:
            await oa.chat.completions.create(model=model, logprobs=True,
                                              messages=[{"role": "user", "content": marker}])
        assert refused.value.body["param"] == "logprobs"  # type: ignore[index]
    assert not [r for r in stack.upstream.stats()["requests"] if marker in str(r["body"])]


PROMPT_IDS = [791, 6864, 315, 9822, 374]  # "The capital of France is", as token ids


def _joined(parts: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for logprobs in parts:
        for name in out:
            out[name] += getattr(logprobs, name) or []
    return out


async def test_a_completion_scores_its_prompt_as_evaluation_harnesses_ask(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    """lm-evaluation-harness's loglikelihood request: the prompt as token ids, echoed, with each token's
    log probability; the same whole and streamed, and billed what the provider counted."""
    model, seed = stack.model("oa-logprobs"), uuid.uuid4().int % 2**31
    ask: Any = {"model": model, "prompt": PROMPT_IDS, "echo": True, "logprobs": 2, "max_tokens": 2,
                "temperature": 0, "seed": seed}
    raw = await oa.completions.with_raw_response.create(**ask)
    whole = raw.parse()
    streamed = [chunk async for chunk in await oa.completions.create(**ask, stream=True)]
    text, recorded = recorded_completion_logprobs("logprobs")
    logprobs = whole.choices[0].logprobs
    assert whole.choices[0].text == text == "The capital of France is Paris."
    assert _joined([logprobs]) == recorded and recorded["token_logprobs"][0] is None
    assert "".join(c.choices[0].text for c in streamed if c.choices) == text
    assert _joined([c.choices[0].logprobs for c in streamed if c.choices and c.choices[0].logprobs]) == recorded
    sent = [r["body"] for r in stack.upstream.stats()["requests"] if r["body"].get("seed") == seed]
    assert len(sent) == 2 and all((b["prompt"], b["echo"], b["logprobs"]) == (PROMPT_IDS, True, 2) for b in sent)
    request_id = raw.headers["x-request-id"]
    [event] = (await usage_events(stack, {request_id}))[request_id]
    assert (event.tokens.input, event.tokens.output) == (5, 2)  # the provider's counts: the echo is not output
    plain = await oa.completions.create(model=model, prompt="The capital of France is", max_tokens=2)
    assert plain.choices[0].logprobs is None  # not asked for, not given


async def test_a_model_that_reads_text_refuses_token_ids_echo_and_logprobs_by_name(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    """Refused by the router before anything is sent (tests/router/test_logprobs.py shows Triton's
    refusal needs no server), so the client gets a 400 naming what the model cannot take."""
    asks: list[tuple[str, dict[str, Any], str]] = [
        (TRITON_MODEL, {"prompt": PROMPT_IDS}, "prompt"),
        (TRITON_MODEL, {"prompt": "Hi", "echo": True}, "echo"),
        (TRITON_MODEL, {"prompt": "Hi", "logprobs": 1}, "logprobs"),
        (stack.model("an-ok"), {"prompt": [[1, 2]]}, "prompt"),  # Anthropic's API: chats only
    ]
    for model, ask, param in asks:
        with pytest.raises(openai.BadRequestError) as refused:
            await oa.completions.create(model=model, max_tokens=2, **ask)
        assert refused.value.body["param"] == param  # type: ignore[index]
        assert refused.value.body["type"] == "invalid_request_error"  # type: ignore[index]


async def test_the_responses_api_gives_the_output_texts_logprobs_when_included(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    model = stack.model("oa-logprobs")
    include: Any = ["message.output_text.logprobs"]
    whole = await oa.responses.create(model=model, input="Capital of France?", include=include, top_logprobs=3)
    async with oa.responses.stream(model=model, input="Capital of France?", include=include,
                                   top_logprobs=3) as stream:
        deltas = [e async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    expected = recorded_logprobs("logprobs")
    for response in (whole, final):
        [message] = response.output
        assert message.type == "message" and message.content[0].type == "output_text"
        assert [e.model_dump() for e in message.content[0].logprobs or []] == expected
        assert response.output_text == "Paris." and response.top_logprobs == 3
    assert [lp.token for e in deltas for lp in e.logprobs] == ["Paris", "."]
    sent = stack.upstream.requests_for(f"logprobs:{model}")[-2:]
    assert all((b["body"]["logprobs"], b["body"]["top_logprobs"]) == (True, 3) for b in sent)


async def test_a_backends_refusal_names_the_responses_parameter_the_client_sent(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    before = len(stack.upstream.requests_for(f"ok:{stack.model('an-ok')}"))
    for model in (TRITON_MODEL, stack.model("an-ok")):
        with pytest.raises(openai.BadRequestError) as refused:
            await oa.responses.create(model=model, input="Hi", include=["message.output_text.logprobs"])
        assert refused.value.param == "include"  # the client's name, not the chat's ("logprobs")
    assert len(stack.upstream.requests_for(f"ok:{stack.model('an-ok')}")) == before
    others: list[tuple[dict[str, Any], str]] = [  # every backend refusal is named as the client wrote it
        ({"reasoning": {"effort": "low"}}, "reasoning.effort"), ({"text": {"verbosity": "low"}}, "text.verbosity"),
        ({"text": {"format": {"type": "json_object"}}}, "text.format"),
    ]
    for fields, param in others:
        with pytest.raises(openai.BadRequestError) as refused:
            await oa.responses.create(model=TRITON_MODEL, input="Hi in JSON", **fields)
        assert refused.value.param == param
