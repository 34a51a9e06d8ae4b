"""Triton on CPU with the real SmolLM2-135M-Instruct, through the router's TensorRT-LLM contract client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infra.stack.ports import free_port
from infra.stack.triton import TritonServer
from services.common.errors import ContextTooLong, UpstreamError
from services.router.backends import GenerationRequest, Outcome, Sampling
from services.router.backends.triton import TritonBackend
from services.router.fallback import retryable

FRANCE = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
async def smollm2(run_dir: Path) -> AsyncIterator[TritonBackend]:
    server = TritonServer(run_dir / "triton-smollm2", free_port(), free_port(), free_port())
    await asyncio.to_thread(server.start)
    try:
        await asyncio.to_thread(server.wait_ready, 120.0)
        backend = TritonBackend(server.grpc_url)
        yield backend
        await backend.close()
    finally:
        await asyncio.to_thread(server.stop)


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
