"""Token log probabilities through the router: an OpenAI-compatible server's, read per chunk and kept to
OpenAI's fields (a chat's entries, or a legacy completion's four lists read per token); backends that
have none refuse the request before sending anything."""

from __future__ import annotations

import uuid

import pytest

from services.common.errors import UnsupportedByBackend
from services.router.backends import ChatTurn, GenerationRequest, Outcome, Sampling
from services.router.backends.anthropic import AnthropicBackend
from services.router.backends.http import ProviderHTTP
from services.router.backends.logprobs import completion_entries, content_entries
from services.router.backends.openai_compat import OpenAICompatBackend
from services.router.backends.triton import TritonBackend
from tests.upstream.harness import UpstreamServer, recorded_completion_logprobs, recorded_logprobs

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


def completion(model: str, prompt: str | tuple[int, ...], **options: object) -> GenerationRequest:
    text, ids = (prompt, None) if isinstance(prompt, str) else (None, prompt)
    return GenerationRequest(request_id="req-" + uuid.uuid4().hex, upstream_model=model,
                             sampling=Sampling(max_tokens=2), prompt=text, prompt_tokens=ids,
                             provider_options=options)


async def test_a_completions_logprobs_come_per_token_from_its_four_lists(
    upstream: UpstreamServer, http: ProviderHTTP, tag: str
) -> None:
    """What lm-evaluation-harness asks to score a text: the prompt echoed with its tokens' logprobs."""
    outcome, got, entries = Outcome(), [], []
    async for batch in OpenAICompatBackend(upstream.openai_base_url, None, http).generate(
            completion(f"logprobs:{tag}", (791, 6864, 315, 9822, 374), echo=True, logprobs=2), outcome):
        got += batch
        entries += outcome.take_logprobs()
    text, lists = recorded_completion_logprobs("logprobs")
    assert "".join(got) == text == "The capital of France is Paris."
    assert [e["token"] for e in entries] == lists["tokens"]
    assert [e["logprob"] for e in entries] == lists["token_logprobs"] and entries[0]["logprob"] is None
    assert [e["top_logprobs"] for e in entries] == lists["top_logprobs"]
    assert [e["text_offset"] for e in entries] == lists["text_offset"] == [0, 3, 11, 14, 21, 24, 30]
    [sent] = upstream.requests_for(f"logprobs:{tag}")
    assert sent["path"] == "/v1/completions"
    assert (sent["body"]["prompt"], sent["body"]["echo"], sent["body"]["logprobs"]) == (
        [791, 6864, 315, 9822, 374], True, 2)


async def test_logprobs_zero_is_asked_for_and_unasked_ones_reach_no_one(
    upstream: UpstreamServer, http: ProviderHTTP, tag: str
) -> None:
    backend = OpenAICompatBackend(upstream.openai_base_url, None, http)
    for options, expected in (({"logprobs": 0}, 7), ({}, 0)):
        outcome, entries = Outcome(), []
        async for _ in backend.generate(completion(f"logprobs:{tag}", "The capital of France is", **options),
                                        outcome):
            entries += outcome.take_logprobs()
        assert len(entries) == expected  # the replay sends them either way: only the asked-for pass
    first, second = upstream.requests_for(f"logprobs:{tag}")
    assert first["body"]["logprobs"] == 0 and "logprobs" not in second["body"]


def test_the_legacy_lists_are_read_per_token_to_the_shortest() -> None:
    raw = {"tokens": ["a", "b", 7], "token_logprobs": [-1.5, "x"], "text_offset": [0, True, 2],
           "top_logprobs": [{"a": -1.5, "z": "bad", 3: -1}, "junk"]}
    assert completion_entries(raw) == [
        {"token": "a", "logprob": -1.5, "top_logprobs": {"a": -1.5, "z": None}, "text_offset": 0},
        {"token": "b", "logprob": None, "top_logprobs": None, "text_offset": None},
        {"token": "", "logprob": None, "top_logprobs": None, "text_offset": 2},
    ]
    assert completion_entries(None) == completion_entries({"tokens": None}) == []


async def test_triton_refuses_a_prompt_of_token_ids_echo_and_logprobs_by_name() -> None:
    backend = TritonBackend("127.0.0.1:9")  # nothing listens: a refusal must come before any call
    for request, param in ((completion("ensemble", (1, 2, 3)), "prompt"),
                           (completion("ensemble", "Hi", echo=True), "echo"),
                           (completion("ensemble", "Hi", logprobs=1), "logprobs")):
        with pytest.raises(UnsupportedByBackend) as refused:
            await anext(backend.generate(request, Outcome()))
        assert refused.value.param == param
