"""Triton on CPU with the real SmolLM2-135M-Instruct, through the router's TensorRT-LLM contract client,
and its `embedding` model through the same client's ``embed`` (one server for both)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from infra.stack.ports import free_port
from infra.stack.triton import EMBEDDING_MODEL, TritonServer
from services.common.errors import ContextTooLong, UpstreamError
from services.router.backends import EmbeddingRequest, GenerationRequest, Outcome, Sampling
from services.router.backends.triton import EMBED_BATCH, TritonBackend
from services.router.fallback import retryable

FRANCE = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
HIDDEN_SIZE = 576  # SmolLM2-135M's: one float32 per dimension
CAT = "The cat sat on the mat."
TEXTS = (CAT, "Quarterly revenue grew by five percent.", "Paris est la capitale de la France.")


@pytest.fixture(scope="module")
async def smollm2_server(run_dir: Path) -> AsyncIterator[TritonServer]:
    server = TritonServer(run_dir / "triton-smollm2", free_port(), free_port(), free_port())
    await asyncio.to_thread(server.start)
    try:
        await asyncio.to_thread(server.wait_ready, 120.0)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture(scope="module")
async def smollm2(smollm2_server: TritonServer) -> AsyncIterator[TritonBackend]:
    backend = TritonBackend(smollm2_server.grpc_url)
    yield backend
    await backend.close()


@pytest.fixture(scope="module")
async def embedder(smollm2_server: TritonServer) -> AsyncIterator[TritonBackend]:
    """The deployment of the embedding model: the same server, the model the catalog names."""
    backend = TritonBackend(smollm2_server.grpc_url, EMBEDDING_MODEL)
    yield backend
    await backend.close()


async def generate(backend: TritonBackend, prompt: str, sampling: Sampling) -> tuple[list[str], Outcome]:
    outcome = Outcome()
    request = GenerationRequest("req_triton_test", "ensemble", sampling, prompt=prompt)
    deltas = [p async for batch in backend.generate(request, outcome) for p in batch]
    return deltas, outcome


async def test_greedy_smollm2_answers_with_backend_token_counts(smollm2: TritonBackend) -> None:
    assert await smollm2.ready()
    deltas, outcome = await generate(smollm2, FRANCE, Sampling(max_tokens=16, temperature=0.0))
    text = "".join(deltas)
    assert "Paris" in text
    assert outcome.input_tokens == 16  # ChatML prompt, counted by the model's own tokenizer
    assert 0 < len(deltas) <= outcome.output_tokens <= 16
    assert outcome.finish_reason == "stop"


async def test_max_tokens_bounds_the_stream_and_reports_length(smollm2: TritonBackend) -> None:
    deltas, outcome = await generate(smollm2, FRANCE, Sampling(max_tokens=3, temperature=0.0))
    assert outcome.output_tokens == 3
    assert outcome.finish_reason == "length"
    assert "".join(deltas)


async def test_stop_word_ends_generation_early(smollm2: TritonBackend) -> None:
    full, _ = await generate(smollm2, FRANCE, Sampling(max_tokens=16, temperature=0.0))
    stopped, outcome = await generate(smollm2, FRANCE, Sampling(max_tokens=16, temperature=0.0, stop=("Paris",)))
    assert "Paris" in "".join(full)
    assert "Paris" not in "".join(stopped)
    assert outcome.output_tokens < 16


async def test_backend_error_surfaces_as_a_typed_error(smollm2: TritonBackend) -> None:
    with pytest.raises(UpstreamError):
        await generate(smollm2, FRANCE, Sampling(max_tokens=0))


async def test_closing_the_stream_cancels_generation_and_frees_the_model(smollm2: TritonBackend) -> None:
    outcome = Outcome()
    request = GenerationRequest("req_cancel", "ensemble", Sampling(max_tokens=200, temperature=0.7, seed=1), prompt=FRANCE)
    stream = smollm2.generate(request, outcome)
    received = [await anext(stream), await anext(stream)]
    await stream.aclose()  # what the router does when the client goes away
    assert len(received) == 2
    loop = asyncio.get_running_loop()
    started = loop.time()
    deltas, _ = await generate(smollm2, FRANCE, Sampling(max_tokens=2, temperature=0.0))
    assert deltas
    assert loop.time() - started < 5.0  # not queued behind 198 more tokens of the cancelled request


async def test_a_prompt_past_the_context_is_the_clients_error(smollm2: TritonBackend) -> None:
    """A 400 context_length_exceeded like a provider's, not a 502 that falls back and counts against
    the breaker: every server of the model would refuse it."""
    long_prompt = "<|im_start|>user\n" + "word " * 9000 + "<|im_end|>\n<|im_start|>assistant\n"  # > 8192 tokens
    with pytest.raises(ContextTooLong) as refused:
        await generate(smollm2, long_prompt, Sampling(max_tokens=4))
    assert "context" in refused.value.message and refused.value.http_status == 400
    assert not retryable(refused.value)


async def embed(backend: TritonBackend, *texts: str) -> tuple[list[np.ndarray], int]:
    """The vectors as float32 arrays read from the backend's bytes (little-endian, as the edge reads them)."""
    answer = await backend.embed(EmbeddingRequest("req_embed_test", EMBEDDING_MODEL, texts))
    assert all(isinstance(vector, bytes) for vector in answer.vectors)
    return [np.frombuffer(vector, dtype="<f4") for vector in answer.vectors], answer.input_tokens


async def preprocessing_count(backend: TritonBackend, text: str) -> int:
    return await backend.count_tokens(GenerationRequest("req_count", "ensemble", Sampling(max_tokens=1), prompt=text))


async def test_an_embedding_is_a_unit_vector_of_the_models_hidden_size(embedder: TritonBackend) -> None:
    assert await embedder.ready()
    answer = await embedder.embed(EmbeddingRequest("req_embed_size", EMBEDDING_MODEL, (CAT,)))
    assert len(answer.vectors) == 1 and len(answer.vectors[0]) == HIDDEN_SIZE * 4
    vector = np.frombuffer(answer.vectors[0], dtype="<f4")
    assert np.all(np.isfinite(vector))
    assert abs(float(np.linalg.norm(vector.astype(np.float64))) - 1.0) < 1e-5


async def test_the_same_text_embeds_to_the_same_bytes_and_another_text_elsewhere(embedder: TritonBackend) -> None:
    first = await embedder.embed(EmbeddingRequest("req_a", EMBEDDING_MODEL, (CAT,)))
    again = await embedder.embed(EmbeddingRequest("req_b", EMBEDDING_MODEL, (CAT,)))
    other, _ = await embed(embedder, TEXTS[1])
    assert first.vectors == again.vectors
    cat = np.frombuffer(first.vectors[0], dtype="<f4")
    assert not np.allclose(cat, other[0], atol=1e-3)
    assert float(cat @ other[0]) < 0.999


async def test_a_batch_answers_each_input_in_order_with_the_preprocessing_models_counts(
    embedder: TritonBackend, smollm2: TritonBackend
) -> None:
    batch, input_tokens = await embed(embedder, *TEXTS)
    assert len(batch) == len(TEXTS)
    for text, row in zip(TEXTS, batch, strict=True):
        alone, _ = await embed(embedder, text)
        np.testing.assert_allclose(row, alone[0], rtol=0, atol=1e-6)
    counts = [await preprocessing_count(smollm2, text) for text in TEXTS]
    assert all(count > 0 for count in counts)
    assert input_tokens == sum(counts)


async def test_more_inputs_than_one_call_takes_are_sent_in_calls_and_kept_in_order(
    embedder: TritonBackend, smollm2: TritonBackend
) -> None:
    """The model's max_batch_size bounds one call; OpenAI's API takes up to 2,048 inputs."""
    texts = [f"note {i}" for i in range(EMBED_BATCH)] + [CAT]
    vectors, input_tokens = await embed(embedder, *texts)
    cat, _ = await embed(embedder, CAT)
    assert len(vectors) == EMBED_BATCH + 1
    np.testing.assert_allclose(vectors[-1], cat[0], rtol=0, atol=1e-6)
    assert input_tokens == sum([await preprocessing_count(smollm2, text) for text in texts])


async def test_an_input_past_the_context_is_the_clients_error(embedder: TritonBackend) -> None:
    with pytest.raises(ContextTooLong) as refused:
        await embed(embedder, CAT, "word " * 9000)  # > 8192 tokens
    assert refused.value.param == "input" and refused.value.http_status == 400
    assert "input[1]" in refused.value.message and "8192" in refused.value.message
    assert not retryable(refused.value)


async def test_an_input_past_the_context_in_a_later_call_is_named_by_the_clients_index(
    embedder: TritonBackend,
) -> None:
    with pytest.raises(ContextTooLong) as refused:
        await embed(embedder, *(["x"] * EMBED_BATCH), "word " * 9000)
    assert f"input[{EMBED_BATCH}]" in refused.value.message
