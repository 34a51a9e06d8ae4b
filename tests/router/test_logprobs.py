"""Token log probabilities through the router: an OpenAI-compatible server's, read per chunk and kept to
OpenAI's fields; backends that have none refuse the request before sending anything."""

from __future__ import annotations

import uuid

import pytest

from services.common.errors import UnsupportedByBackend
from services.router.backends import ChatTurn, GenerationRequest, Outcome, Sampling
from services.router.backends.anthropic import AnthropicBackend
from services.router.backends.http import ProviderHTTP
from services.router.backends.logprobs import content_entries
from services.router.backends.openai_compat import OpenAICompatBackend
from services.router.backends.triton import TritonBackend
from tests.upstream.harness import UpstreamServer, recorded_logprobs

ASKED = {"logprobs": True, "top_logprobs": 3}


def request(model: str) -> GenerationRequest:
    return GenerationRequest(request_id="req-" + uuid.uuid4().hex, upstream_model=model,
                             sampling=Sampling(max_tokens=16), messages=(ChatTurn("user", "Capital of France?"),),
                             provider_options=ASKED)


async def test_the_servers_logprobs_come_with_their_text(upstream: UpstreamServer, http: ProviderHTTP, tag: str) -> None:
    outcome, got, entries = Outcome(), [], []
    async for batch in OpenAICompatBackend(upstream.openai_base_url, None, http).generate(
            request(f"logprobs:{tag}"), outcome):
        taken = outcome.take_logprobs()  # as the router's server takes them with each batch
        assert batch or taken
        got += batch
        entries += taken
    assert got == ["Paris", "."]
    assert entries == recorded_logprobs("logprobs") and len(entries) == 2
    [sent] = upstream.requests_for(f"logprobs:{tag}")
    assert (sent["body"]["logprobs"], sent["body"]["top_logprobs"]) == (True, 3)


def test_only_openais_fields_go_on_each_of_its_type() -> None:
    raw = {"content": [
        {"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "extra": "x",
         "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "id": 9}, "junk"]},
        {"token": 5, "logprob": "low", "bytes": [300], "top_logprobs": None},
        "junk",
    ]}
    assert content_entries(raw) == [
        {"token": "Hi", "logprob": -0.5, "bytes": [72, 105],
         "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}]},
        {"token": "", "logprob": None, "bytes": None, "top_logprobs": []},
    ]
    assert content_entries(None) == content_entries({"content": None}) == []


async def test_backends_without_logprobs_refuse_before_sending(
    upstream: UpstreamServer, http: ProviderHTTP, tag: str
) -> None:
    for backend in (TritonBackend("127.0.0.1:9"), AnthropicBackend(upstream.anthropic_base_url, None, http)):
        with pytest.raises(UnsupportedByBackend) as refused:
            await anext(backend.generate(request(f"ok:{tag}"), Outcome()))
        assert refused.value.param == "logprobs"
    assert upstream.requests_for(f"ok:{tag}") == []
