"""``/v1/embeddings`` through the official OpenAI SDK, on the real stack: an OpenAI-compatible provider
(the replaying upstream) and the self-hosted Triton's ``embedding`` model, metered as input; the wrong
kind of model, and what a backend cannot do, refused with nothing forwarded."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import numpy as np
import openai
import pytest

from tests.e2e.conftest import Stack, all_usage_events, usage_events
from tests.upstream.harness import recorded_embeddings

TRITON_EMBED = "smollm2-135m-embed"  # the seed's self-hosted embedding model (tiny random Llama in tests)
TINY_HIDDEN = 64  # the tiny model's hidden size: the size of its vectors


def recorded(scenario: str) -> list[np.ndarray]:
    return [np.frombuffer(v, "<f4") for v in recorded_embeddings(scenario)]


def _sent(stack: Stack, model: str, marker: str) -> list[dict[str, object]]:
    return [r["body"] for r in stack.upstream.requests_for(model) if marker in json.dumps(r["body"])]


async def test_the_sdks_default_and_float_answers_are_the_providers_vectors(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    """The SDK asks for base64 by default and decodes it; asked for floats it reads numbers. Both are
    the provider's float32 vectors exactly, and the provider was asked for base64 both times."""
    model, marker = stack.model("oa-embed-ok"), uuid.uuid4().hex
    default = await oa.embeddings.create(model=model, input=f"hello {marker}")
    floats = await oa.embeddings.create(model=model, input=[f"hello {marker}"], encoding_format="float")
    [expected] = recorded("ok")
    for answer in (default, floats):
        assert answer.model == model and len(answer.data) == 1 and answer.data[0].index == 0
        assert np.array(answer.data[0].embedding, "<f4").tobytes() == expected.tobytes()
        assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (8, 8)
    sent = _sent(stack, f"ok:{model}", marker)
    assert [s["input"] for s in sent] == [[f"hello {marker}"]] * 2
    assert all(s["encoding_format"] == "base64" for s in sent)


async def test_several_inputs_token_ids_and_a_size_reach_the_provider(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    model = stack.model("oa-embed-two")
    answer = await oa.embeddings.create(model=model, input=[[9906, 1917], [15339]], dimensions=256)
    assert [np.array(d.embedding, "<f4").tobytes() for d in answer.data] == [v.tobytes() for v in recorded("two")]
    assert answer.usage.prompt_tokens == 13
    [sent] = [r["body"] for r in stack.upstream.requests_for(f"two:{model}") if r["body"]["input"] == [[9906, 1917], [15339]]]
    assert sent["dimensions"] == 256


async def test_a_server_answering_numbers_is_passed_on_exactly(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    answer = await oa.embeddings.create(model=stack.model("oa-embed-floats"), input="x")
    assert np.array(answer.data[0].embedding, "<f4").tobytes() == recorded("floats")[0].tobytes()


async def test_the_self_hosted_model_embeds_on_triton(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    """A real forward pass: one unit vector per input of the model's hidden size, the same text the
    same vector in a batch or alone, tokens as the model counted them."""
    texts = ["The cat sat on the mat.", "Stock markets fell sharply today.", "The cat sat on the mat."]
    batch = await oa.embeddings.create(model=TRITON_EMBED, input=texts)
    alone = await oa.embeddings.create(model=TRITON_EMBED, input=texts[1], encoding_format="float")
    vectors = [np.array(d.embedding, "<f4") for d in batch.data]
    assert [v.shape for v in vectors] == [(TINY_HIDDEN,)] * 3
    assert all(abs(float(np.linalg.norm(v)) - 1.0) < 1e-5 for v in vectors)
    assert vectors[0].tobytes() == vectors[2].tobytes() and not np.allclose(vectors[0], vectors[1])
    assert np.allclose(np.array(alone.data[0].embedding, "<f4"), vectors[1], atol=1e-6)
    assert batch.usage.prompt_tokens > alone.usage.prompt_tokens > 0


async def test_an_embedding_is_metered_as_input_only(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.post(f"{stack.base_url}/embeddings", headers={"authorization": f"Bearer {stack.key}"},
                                json={"model": stack.model("oa-embed-two"), "input": ["a", "b"]})
    assert reply.status_code == 200, reply.text
    request_id = reply.headers["x-request-id"]
    [event] = (await usage_events(stack, {request_id}))[request_id]
    assert event.api == "openai.embeddings" and not event.streamed and event.status == "ok"
    assert (event.tokens.input, event.tokens.output) == (13, 0)
    model = stack.model("oa-embed-two")
    assert (event.model_served, event.price_version, event.deployment_id) == (model, f"{model}-price", f"{model}-dep")


async def test_the_wrong_kind_of_model_is_refused_before_anything_is_forwarded(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    marker = uuid.uuid4().hex
    with pytest.raises(openai.BadRequestError) as chat_model:
        await oa.embeddings.create(model=stack.model("oa-ok"), input=marker)
    assert chat_model.value.body["param"] == "model" and "does not serve embeddings" in chat_model.value.message
    with pytest.raises(openai.BadRequestError) as embed_model:
        await oa.chat.completions.create(model=stack.model("oa-embed-ok"), messages=[{"role": "user", "content": marker}])
    assert "is an embedding model" in embed_model.value.message
    assert not [r for r in stack.upstream.stats()["requests"] if marker in json.dumps(r["body"])]


async def test_what_the_backend_cannot_do_is_a_400_naming_the_parameter(oa: openai.AsyncOpenAI) -> None:
    """The self-hosted model has one size and takes text: a size, or token ids, is refused by name."""
    with pytest.raises(openai.BadRequestError) as sized:
        await oa.embeddings.create(model=TRITON_EMBED, input="x", dimensions=32)
    assert sized.value.body["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError) as tokens:
        await oa.embeddings.create(model=TRITON_EMBED, input=[[1, 2, 3]])
    assert tokens.value.body["param"] == "input"


async def test_bad_input_is_refused_and_not_billed(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.post(f"{stack.base_url}/embeddings", headers={"authorization": f"Bearer {stack.key}"},
                                json={"model": stack.model("oa-embed-ok"), "input": ["fine", ""]})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "input[1]" and reply.json()["error"]["type"] == "invalid_request_error"
    request_id = reply.headers["x-request-id"]
    assert request_id not in await usage_events(stack, {request_id}, timeout=2)


async def test_a_client_that_leaves_cancels_the_provider_call_and_is_billed_nothing(stack: Stack) -> None:
    """The provider answers after 5 s; the client gives up after 0.5 s. The provider sees the
    disconnect at once, and the request is recorded as client_disconnected with no tokens."""
    model = stack.model("oa-embed-slow")
    async with httpx.AsyncClient(timeout=0.5) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{stack.base_url}/embeddings", headers={"authorization": f"Bearer {stack.key}"},
                            json={"model": model, "input": "x"})
    deadline = time.monotonic() + 10
    while stack.upstream.model_stats(f"slow:{model}")["disconnects"] < 1:
        assert time.monotonic() < deadline, stack.upstream.model_stats(f"slow:{model}")
        await asyncio.sleep(0.1)
    while not (events := [e for e in await all_usage_events(stack)
                          if e.model_requested == model and e.status == "client_disconnected"]):
        assert time.monotonic() < deadline + 20, "no usage event for the request whose client left"
        await asyncio.sleep(0.2)
    [event] = events
    assert (event.api, event.tokens.input, event.tokens.output) == ("openai.embeddings", 0, 0)
    assert event.duration_ms < 4500  # ended when the client left, not when the provider answered
