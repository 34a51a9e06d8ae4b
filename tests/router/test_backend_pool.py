"""The backend a deployment entry gets: how its requests will look at that endpoint."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from services.common.errors import UnsupportedByBackend
from services.common.events.catalog import DeploymentEntry
from services.router.backend_pool import BackendPool
from services.router.backends import ChatTurn, GenerationRequest, Image, Sampling
from services.router.backends.openai_compat import OpenAICompatBackend

CHAT = GenerationRequest("req_pool", "o3", Sampling(max_tokens=50), messages=(ChatTurn("user", "hi"),),
                         prompt_cache_key="tg-" + "0" * 32)


ENDPOINTS = ("https://api.openai.com/v1", "https://api.groq.com/openai/v1", "http://127.0.0.1:8000/v1")


def _deployment(endpoint: str) -> DeploymentEntry:
    return DeploymentEntry(id=f"d-{len(endpoint)}", model_id="m", backend="openai", endpoint=endpoint,
                           upstream_model="o3", credentials_env="OPENAI_API_KEY")


async def _bodies(*built: tuple[DeploymentEntry, GenerationRequest]) -> list[dict[str, Any]]:
    """The body each entry's backend, as the pool builds it, would send for its request."""
    pool = BackendPool()
    try:
        bodies = []
        for entry, request in built:
            backend = pool.get(entry)
            assert isinstance(backend, OpenAICompatBackend)
            bodies.append(backend._body(request)[1])
        return bodies
    finally:
        await pool.close()


async def test_openais_own_api_gets_max_completion_tokens_and_compatible_servers_max_tokens() -> None:
    """OpenAI's reasoning models (o-series, gpt-5, in the seeded catalog) refuse max_tokens; vLLM,
    Groq and most compatible servers know only max_tokens."""
    bodies = dict(zip(ENDPOINTS, await _bodies(*((_deployment(e), CHAT) for e in ENDPOINTS)), strict=True))
    assert bodies["https://api.openai.com/v1"]["max_completion_tokens"] == 50
    assert "max_tokens" not in bodies["https://api.openai.com/v1"]
    assert bodies["https://api.groq.com/openai/v1"]["max_tokens"] == 50
    assert bodies["http://127.0.0.1:8000/v1"]["max_tokens"] == 50


async def test_only_openais_own_api_gets_the_prompt_cache_key() -> None:
    """OpenAI routes its prompt cache by it; a compatible server may refuse a field it does not know."""
    bodies = await _bodies(*((_deployment(e), CHAT) for e in ENDPOINTS))
    sent = {endpoint: body.get("prompt_cache_key") for endpoint, body in zip(ENDPOINTS, bodies, strict=True)}
    assert sent == {"https://api.openai.com/v1": "tg-" + "0" * 32, "https://api.groq.com/openai/v1": None,
                    "http://127.0.0.1:8000/v1": None}


async def test_only_openais_own_api_is_sent_image_urls_unless_the_catalog_says_so() -> None:
    """OpenAI fetches a URL on its side; a self-hosted server would fetch it from inside the operator's
    network, so it gets image URLs only with the image_urls feature."""
    by_url = replace(CHAT, messages=(ChatTurn("user", "what?", images=(Image(5, "https://example.com/a.png"),)),))
    allowed = _deployment("http://10.0.0.7:8000/v1").model_copy(update={"features": ("image_urls",)})
    [openai, vllm] = await _bodies((_deployment(ENDPOINTS[0]), by_url), (allowed, by_url))
    assert openai["messages"][0]["content"][1]["image_url"]["url"] == vllm["messages"][0]["content"][1]["image_url"]["url"]
    with pytest.raises(UnsupportedByBackend):
        await _bodies((_deployment(ENDPOINTS[2]), by_url))


async def test_the_catalogs_features_override_what_the_endpoint_suggests() -> None:
    """A vLLM server that takes top_k and reports usage on every chunk; an OpenAI deployment told to
    send max_tokens (a proxy in front of it that knows no other name)."""
    vllm = _deployment("http://10.0.0.7:8000/v1").model_copy(update={"features": ("top_k", "continuous_usage")})
    plain = _deployment("https://api.openai.com/v1").model_copy(update={"features": ()})
    sampled = replace(CHAT, sampling=Sampling(max_tokens=50, top_k=40))
    vllm_body, plain_body = await _bodies((vllm, sampled), (plain, CHAT))
    assert vllm_body["top_k"] == 40 and vllm_body["stream_options"]["continuous_usage_stats"] is True
    assert vllm_body["max_tokens"] == 50 and "prompt_cache_key" not in vllm_body
    assert plain_body["max_tokens"] == 50 and "prompt_cache_key" not in plain_body
