"""Embeddings on the router: the OpenAI-compatible backend against the replaying upstream (a real
socket), reading an answer (``backends.embeddings``), and fallback along a chain of real backends."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from services.common.errors import ContextTooLong, Overloaded, UnsupportedByBackend, UpstreamError
from services.router.backends import EmbeddingRequest, Outcome
from services.router.backends.anthropic import AnthropicBackend
from services.router.backends.embeddings import float32_bytes, read_answer
from services.router.backends.http import ProviderHTTP
from services.router.backends.openai_compat import OpenAICompatBackend
from services.router.breaker import BreakerState, CircuitBreaker
from services.router.fallback import Deployment, Served, embed_with_fallback
from tests.upstream.harness import UpstreamServer, recorded_embeddings


def request(model: str, *inputs: str | tuple[int, ...], dimensions: int | None = None) -> EmbeddingRequest:
    return EmbeddingRequest("req_embed_test", model, inputs, dimensions=dimensions, end_user="u_hash")


@pytest.fixture
def backend(upstream: UpstreamServer, http: ProviderHTTP) -> OpenAICompatBackend:
    return OpenAICompatBackend(upstream.openai_base_url, None, http)


async def test_vectors_and_tokens_come_as_the_provider_sent_them(
    backend: OpenAICompatBackend, upstream: UpstreamServer, tag: str
) -> None:
    model = f"two:{tag}"
    got = await backend.embed(request(model, "first text", (15339, 1917), dimensions=256))
    assert list(got.vectors) == recorded_embeddings("two")
    assert len(got.vectors[0]) == 256 * 4
    assert got.input_tokens == 13
    [sent] = upstream.requests_for(model)
    assert sent["path"] == "/v1/embeddings"
    # base64 asked for whatever the client wants; token ids and the size go on as given
    assert sent["body"] == {"model": model, "encoding_format": "base64", "input": ["first text", [15339, 1917]],
                            "dimensions": 256, "user": "u_hash"}


async def test_a_server_that_answers_with_numbers_is_read_as_float32(backend: OpenAICompatBackend, tag: str) -> None:
    got = await backend.embed(request(f"floats:{tag}", "hello"))
    assert list(got.vectors) == recorded_embeddings("floats")
    assert got.input_tokens == 5


async def test_fewer_vectors_than_inputs_is_the_providers_fault(backend: OpenAICompatBackend, tag: str) -> None:
    with pytest.raises(UpstreamError, match="1 vectors for 2 inputs"):
        await backend.embed(request(f"ok:{tag}", "one", "two"))


@pytest.mark.parametrize(("scenario", "error"), [("context-too-long", ContextTooLong), ("server-error", UpstreamError)])
async def test_provider_errors_map_as_for_generations(
    backend: OpenAICompatBackend, tag: str, scenario: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await backend.embed(request(f"{scenario}:{tag}", "text"))


async def test_anthropic_refuses_before_sending(upstream: UpstreamServer, http: ProviderHTTP, tag: str) -> None:
    anthropic = AnthropicBackend(upstream.anthropic_base_url, None, http)
    with pytest.raises(UnsupportedByBackend) as refused:
        await anthropic.embed(request(f"ok:{tag}", "text"))
    assert refused.value.param == "model"
    assert upstream.requests_for(f"ok:{tag}") == []


def test_an_answer_is_put_in_the_inputs_order_by_index() -> None:
    first, second = float32_bytes([1.0, 0.5]), float32_bytes([0.25, -2.0])
    answer = {"data": [{"index": 1, "embedding": base64.b64encode(second).decode()},
                       {"index": 0, "embedding": [1.0, 0.5]}], "usage": {"prompt_tokens": 4}}
    got = read_answer(answer, 2)
    assert got.vectors == (first, second)
    assert got.input_tokens == 4


@pytest.mark.parametrize(("answer", "why"), [
    (None, "not a list"),
    ({"data": [{"index": 0, "embedding": "not base64!"}]}, "not base64"),
    ({"data": [{"index": 0, "embedding": base64.b64encode(b"12345").decode()}]}, "not float32"),
    ({"data": [{"index": 0, "embedding": [1.0, "x"]}]}, "other than numbers"),
    ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}]}, "two vectors"),
    ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [2.0, 3.0]}]}, "different or no size"),
    ({"data": [{"index": 5, "embedding": [1.0]}, {"index": 1, "embedding": [2.0]}]}, "out of range"),
    ({"data": [{"index": 0}, {"index": 1, "embedding": [2.0]}]}, "without a vector"),
])
def test_a_malformed_answer_is_an_upstream_error(answer: Any, why: str) -> None:
    with pytest.raises(UpstreamError, match=why):
        read_answer(answer, 1 if answer and len(answer["data"]) == 1 else 2)


def _chain(upstream: UpstreamServer, http: ProviderHTTP, tag: str) -> list[Deployment]:
    return [
        Deployment("dep-anthropic", "anthropic", f"ok:{tag}",
                   AnthropicBackend(upstream.anthropic_base_url, None, http)),
        Deployment("dep-broken", "openai", f"server-error:{tag}",
                   OpenAICompatBackend(upstream.openai_base_url, None, http)),
        Deployment("dep-ok", "openai", f"ok:{tag}", OpenAICompatBackend(upstream.openai_base_url, None, http)),
    ]


def _breakers() -> dict[str, CircuitBreaker]:
    """Breakers that open on one failure, so a test sees the verdict of one attempt."""
    return {name: CircuitBreaker(name, failure_threshold=1) for name in ("dep-anthropic", "dep-broken", "dep-ok")}


async def test_fallback_passes_a_refusal_on_and_moves_past_a_failure(
    upstream: UpstreamServer, http: ProviderHTTP, tag: str
) -> None:
    breakers = _breakers()
    served = Served(Outcome())
    got = await embed_with_fallback(_chain(upstream, http, tag), request("x", "text"), breakers, served)
    assert list(got.vectors) == recorded_embeddings("ok")
    assert (served.deployment_id, served.provider, served.attempts) == ("dep-ok", "openai", 2)
    # the failure counted against its deployment; the refusal did not, and sent nothing
    assert breakers["dep-broken"].state is BreakerState.OPEN
    assert breakers["dep-anthropic"].state is BreakerState.CLOSED
    assert [r["path"] for r in upstream.requests_for(f"ok:{tag}")] == ["/v1/embeddings"]


async def test_a_refusal_by_every_deployment_is_the_answer(
    upstream: UpstreamServer, http: ProviderHTTP, tag: str
) -> None:
    with pytest.raises(UnsupportedByBackend):
        await embed_with_fallback(_chain(upstream, http, tag)[:1], request("x", "text"), _breakers(), Served(Outcome()))


async def test_an_open_breaker_skips_its_deployment(upstream: UpstreamServer, http: ProviderHTTP, tag: str) -> None:
    chain, breakers = _chain(upstream, http, tag)[1:2], _breakers()
    with pytest.raises(UpstreamError):
        await embed_with_fallback(chain, request("x", "text"), breakers, Served(Outcome()))
    with pytest.raises(Overloaded):  # open: nothing is sent
        await embed_with_fallback(chain, request("x", "text"), breakers, Served(Outcome()))
    assert len(upstream.requests_for(f"server-error:{tag}")) == 1
