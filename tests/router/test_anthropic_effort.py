"""OpenAI's ``reasoning_effort`` on an Anthropic deployment: a thinking budget out of the output limit,
the sampling thinking cannot take refused before sending, and a tool loop without its thinking sent
without thinking; then the recorded thinking answer, read back as blocks."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from services.common.errors import InvalidRequest, UnsupportedByBackend
from services.router.backends import (
    ChatTurn,
    GenerationRequest,
    Outcome,
    Sampling,
    ThinkingBlock,
    ThinkingConfig,
)
from services.router.backends.anthropic import AnthropicBackend
from services.router.backends.anthropic_effort import thinking_for_effort
from services.router.backends.http import ProviderHTTP
from tests.router.draining import drain
from tests.upstream.harness import UpstreamServer

CALL = [{"id": "toolu_1", "type": "function", "function": {"name": "gcd", "arguments": "{}"}}]


def request(effort: Any, max_tokens: int = 4096, *, turns: tuple[ChatTurn, ...] | None = None,
            calls: dict[str, Any] | None = None, model: str = "m", **sampling: Any) -> GenerationRequest:
    options: dict[str, Any] = {"reasoning_effort": effort}
    if calls:
        options["assistant_tool_calls"] = calls
    return GenerationRequest(
        request_id="req-" + uuid.uuid4().hex, upstream_model=model, sampling=Sampling(max_tokens, **sampling),
        messages=turns or (ChatTurn("user", "GCD of 1071 and 462?"),), provider_options=options,
    )


@pytest.mark.parametrize(("effort", "max_tokens", "budget"), [
    ("high", 4096, 3276),  # 80 % of the output limit
    ("medium", 10000, 5000),
    ("low", 10000, 2000),
    ("low", 2000, 1024),  # at least Anthropic's least budget
    ("high", 64000, 32000),  # at most 32,000
    ("xhigh", 10000, 9500),
    ("high", 1100, 1024),  # 1,024 even where that is more than 80 %
])
def test_the_budget_is_a_share_of_the_output_limit(effort: str, max_tokens: int, budget: int) -> None:
    assert thinking_for_effort(request(effort, max_tokens)) == {"type": "enabled", "budget_tokens": budget}


@pytest.mark.parametrize("effort", ["none", "minimal"])
def test_no_effort_is_no_thinking(effort: str) -> None:
    assert thinking_for_effort(request(effort)) is None


def test_an_unknown_effort_is_the_clients_error() -> None:
    with pytest.raises(InvalidRequest) as refused:
        thinking_for_effort(request("extreme"))
    assert refused.value.param == "reasoning_effort" and "'high' and 'xhigh'" in refused.value.message


@pytest.mark.parametrize(("sampling", "param"), [
    ({"max_tokens": 1024}, "reasoning_effort"),  # no room to think
    ({"temperature": 0.5}, "temperature"),
    ({"top_k": 40}, "top_k"),
    ({"top_p": 0.9}, "top_p"),
])
def test_sampling_thinking_cannot_take_is_refused(sampling: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedByBackend) as refused:
        thinking_for_effort(request("high", **({"max_tokens": 4096} | sampling)))
    assert refused.value.param == param


def test_sampling_thinking_takes_is_kept() -> None:
    assert thinking_for_effort(request("high", temperature=1.0, top_p=0.95)) is not None


def test_a_tool_loop_without_its_thinking_is_sent_without_thinking() -> None:
    turns = (ChatTurn("user", "GCD?"), ChatTurn("assistant", ""), ChatTurn("tool", "21", tool_call_id="toolu_1"))
    assert thinking_for_effort(request("high", turns=turns, calls={"1": CALL})) is None
    signed = ThinkingBlock(thinking="Use Euclid.", signature="sig")
    kept = (turns[0], ChatTurn("assistant", "", thinking=(signed,)), turns[2])
    assert thinking_for_effort(request("high", turns=kept, calls={"1": CALL})) is not None
    unsigned = (turns[0], ChatTurn("assistant", "", thinking=(ThinkingBlock("another model's"),)), turns[2])
    assert thinking_for_effort(request("high", turns=unsigned, calls={"1": CALL})) is None  # not sent back
    # an earlier turn's calls, answered before a later plain answer, are not a loop in progress
    later = (*turns, ChatTurn("assistant", "It is 21."), ChatTurn("user", "And of 10 and 4?"))
    assert thinking_for_effort(request("high", turns=later, calls={"1": CALL})) is not None


def test_the_clients_own_thinking_wins() -> None:
    explicit = replace(request("high"), thinking=ThinkingConfig("enabled", 2048))
    assert thinking_for_effort(explicit) is None  # the body takes request.thinking as it is


async def test_the_provider_gets_a_budget_and_the_answer_comes_back_as_blocks(
    upstream: UpstreamServer, http: ProviderHTTP, tag: str
) -> None:
    backend = AnthropicBackend(upstream.anthropic_base_url, None, http)
    model = f"thinking:{tag}"
    outcome = Outcome()
    _, error = await drain(backend.generate(request("high", 4096, model=model), outcome), outcome)
    assert error is None
    [sent] = upstream.requests_for(model)
    assert sent["body"]["thinking"] == {"type": "enabled", "budget_tokens": 3276}
    assert "reasoning_effort" not in sent["body"]
    assert [bool(b.signature) or bool(b.redacted) for b in outcome.thinking] == [True, True]
