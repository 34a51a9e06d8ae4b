"""Bad input gets the API's own error format and changes nothing: nothing is forwarded upstream."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import Stack


async def test_bad_key_is_401_in_openai_format(stack: Stack) -> None:
    async with openai.AsyncOpenAI(base_url=stack.base_url, api_key="tg-" + "x" * 43, max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as err:
            await bad.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**6}, 400, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 10**6}, 400,
         "max_completion_tokens"),
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, 400, "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 129}, 400, "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "bogus": 1}, 400, "bogus"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_1", "content": "4"}]},
         400, "messages[1].role"),  # a tool's answer with no call before it
    ],
)
async def test_invalid_requests_are_400_and_never_forwarded(stack: Stack, body: dict[str, object], status: int, param: str) -> None:
    model = stack.model("oa-ok")
    before = stack.upstream.model_stats(f"ok:{model}")["requests"]
    async with httpx.AsyncClient() as http:
        reply = await http.post(f"{stack.base_url}/chat/completions", headers={"authorization": f"Bearer {stack.key}"},
                                json={"model": model, **body})
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert stack.upstream.model_stats(f"ok:{model}")["requests"] == before


async def test_malformed_json_unknown_model_and_oversized_body(stack: Stack) -> None:
    auth = {"authorization": f"Bearer {stack.key}", "content-type": "application/json"}
    async with httpx.AsyncClient() as http:
        malformed = await http.post(f"{stack.base_url}/chat/completions", headers=auth, content=b'{"model": ')
        unknown = await http.post(f"{stack.base_url}/chat/completions", headers=auth,
                                  json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})
        huge = await http.post(f"{stack.base_url}/chat/completions", headers=auth, content=b"x" * (5 * 1024 * 1024))
    assert malformed.status_code == 400 and malformed.json()["error"]["type"] == "invalid_request_error"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert huge.status_code == 413


async def test_unsupported_parameter_for_a_self_hosted_model_is_400(oa: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await oa.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        )
    # named by the router's backend, carried back over the Session to the client's error
    assert (refused.value.param, refused.value.code) == ("tools", "unsupported_parameter")
    with pytest.raises(openai.BadRequestError) as tool_turn:  # a tool's result, without tools this time
        await oa.chat.completions.create(model="smollm2", messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "20C"},
        ])
    assert (tool_turn.value.param, tool_turn.value.code) == ("messages", "unsupported_parameter")


async def test_provider_context_error_is_400_and_exhausted_backends_are_5xx(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError):
        await oa.chat.completions.create(model=stack.model("oa-context-too-long"), messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.InternalServerError) as err:
        await oa.chat.completions.create(model=stack.model("oa-server-error"), messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 502


async def test_a_tool_result_without_its_call_is_refused_in_anthropic_words(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    model = stack.model("an-tool-use")
    before = stack.upstream.model_stats(f"tool-use:{model}")["requests"]
    with pytest.raises(anthropic.BadRequestError) as bad:
        await claude.messages.create(model=model, max_tokens=16, messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}]},
            {"role": "user", "content": "never mind"},
        ])
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert bad.value.body["error"]["message"].startswith(  # type: ignore[index]
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1.")
    assert stack.upstream.model_stats(f"tool-use:{model}")["requests"] == before


async def test_anthropic_errors_use_anthropic_format(claude: anthropic.AsyncAnthropic, stack: Stack) -> None:
    base = stack.base_url.removesuffix("/v1")
    with pytest.raises(anthropic.BadRequestError) as bad:
        await claude.messages.create(model="smollm2", max_tokens=0, messages=[{"role": "user", "content": "hi"}])
    assert bad.value.body["type"] == "error" and bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    async with anthropic.AsyncAnthropic(base_url=base, api_key="tg-" + "y" * 43, max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError):
            await wrong.messages.create(model="smollm2", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


async def test_an_upstream_rate_limit_reaches_the_client_as_429_with_retry_after(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        await oa.chat.completions.create(
            model=stack.model("oa-rate-limited"), messages=[{"role": "user", "content": "hi"}]
        )
    headers = err.value.response.headers
    assert headers["retry-after"] == "2"  # the provider's, carried across the router's gRPC trailers
    assert not [h for h in headers if h.startswith("openai-")]
    # x-ratelimit-* are the key's own limits (600 RPM, 200k TPM), never the provider's (10000, 10M)
    assert headers["x-ratelimit-limit-requests"] == "600"
    assert headers["x-ratelimit-limit-tokens"] == "200000"
    assert err.value.code == "upstream_rate_limited"


async def test_endpoints_not_served_answer_in_each_sdks_own_format(
    oa: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """An SDK call to an endpoint the platform does not serve reads as the provider would say it."""
    with pytest.raises(openai.NotFoundError) as moderations:
        await oa.moderations.create(model="smollm2", input="hi")
    assert moderations.value.code == "unknown_url" and "POST /v1/moderations" in moderations.value.message
    assert moderations.value.response.headers["x-request-id"].startswith("req_")
    with pytest.raises(anthropic.NotFoundError) as batches:
        await claude.messages.batches.list()
    assert batches.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    async with httpx.AsyncClient() as http:
        wrong = await http.get(f"{stack.base_url}/chat/completions", headers={"authorization": f"Bearer {stack.key}"})
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["code"] == "method_not_allowed"
