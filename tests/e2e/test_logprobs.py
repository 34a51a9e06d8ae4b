"""Chat Completions' logprobs through the official OpenAI SDK: an OpenAI-compatible provider's, whole
and streamed alike (the SDK's stream helper rebuilds them), and refused by name, with nothing
forwarded, where no deployment of the model can give them."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest

from tests.e2e.conftest import TRITON_MODEL, Stack
from tests.upstream.harness import recorded_logprobs

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
