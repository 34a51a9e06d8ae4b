"""The official OpenAI Python SDK against the platform, unchanged: edge → router → Triton / provider."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from services.common.events.keys import KeyEventV1
from services.edge.end_user import end_user_id
from tests.e2e.conftest import KEY_EXAMPLE, TRITON_MODEL, Stack, read_then_leave, upstream_disconnects


async def test_chat_non_stream_on_triton(oa: openai.AsyncOpenAI) -> None:
    raw = await oa.chat.completions.with_raw_response.create(
        model=TRITON_MODEL, messages=[{"role": "user", "content": "Say hi"}], max_tokens=6, temperature=0
    )
    completion = raw.parse()
    assert raw.headers["x-request-id"].startswith("req_")
    assert completion.id == "chatcmpl-" + raw.headers["x-request-id"].removeprefix("req_")
    assert completion.choices[0].message.content
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 6
    assert completion.usage.prompt_tokens > 0


async def test_chat_stream_with_usage_on_triton(oa: openai.AsyncOpenAI) -> None:
    stream = await oa.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Count"}], max_tokens=5, temperature=0,
        stream=True, stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text and finish == "length"
    assert usage is not None and usage.completion_tokens == 5


async def test_usage_equals_what_the_provider_reported(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    completion = await oa.chat.completions.create(
        model=stack.model("oa-ok"), messages=[{"role": "user", "content": "Hello"}], max_tokens=50
    )
    stream = await oa.chat.completions.create(
        model=stack.model("oa-ok"), messages=[{"role": "user", "content": "Hello"}], max_tokens=50,
        stream=True, stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    streamed_usage = chunks[-1].usage
    assert completion.usage is not None and streamed_usage is not None
    assert completion.usage.model_dump() == streamed_usage.model_dump()
    assert completion.choices[0].message.content == "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices)
    sent = stack.upstream.requests_for(f"ok:{stack.model('oa-ok')}")
    assert sent and all(r["stream_options"] == {"include_usage": True} for r in sent)


async def test_completions_and_models(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    completion = await oa.completions.create(model=TRITON_MODEL, prompt="Once upon", max_tokens=4)
    assert completion.choices[0].text and completion.usage is not None
    stream = await oa.completions.create(model=TRITON_MODEL, prompt="Once", max_tokens=3, stream=True)
    assert "".join([c.choices[0].text async for c in stream if c.choices])
    models = {m.id: m for m in (await oa.models.list()).data}
    assert {TRITON_MODEL, "smollm2", stack.model("oa-ok")} <= set(models)
    assert models[TRITON_MODEL].created > 1_700_000_000  # when the catalog first held it (the seed's run)
    pricing = (models[TRITON_MODEL].model_extra or {})["pricing"]
    assert pricing["prompt"] == "0.00000002" and pricing["completion"] == "0.00000004"


async def test_provider_identity_headers_never_reach_the_client(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            f"{stack.base_url}/chat/completions", headers={"authorization": f"Bearer {stack.key}"},
            json={"model": stack.model("oa-ok"), "messages": [{"role": "user", "content": "hi"}]},
        )
    assert reply.status_code == 200
    leaked = {h for h in reply.headers if h.startswith(("openai-", "anthropic-", "cf-", "set-cookie"))}
    assert leaked == set()
    # rate-limit headers are the key's own (600 RPM), never the provider's recorded ones (10000)
    assert reply.headers["x-ratelimit-limit-requests"] == "600"
    assert reply.headers["x-request-id"].startswith("req_")


async def test_failure_after_first_byte_ends_the_stream_with_an_error(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    stream = await oa.chat.completions.create(
        model=stack.model("oa-cut-mid-stream"), messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            received.append(chunk)
    assert received  # it had started: an error event, not a clean finish


async def test_client_disconnect_cancels_the_upstream_request(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    model = stack.model("oa-slow-stream")
    stream = await oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
    await read_then_leave(stream, 3)
    stats = await upstream_disconnects(stack, f"slow-stream:{model}", 1)
    assert stats["disconnects"] == 1 and stats["completed"] == 0


async def _upstream_gave_up(stack: Stack, upstream_model: str, before: dict[str, int]) -> dict[str, int]:
    """The upstream's counts for the model once it has seen one more disconnect than ``before`` (or
    after 4 s: the slow scenario answers after 5 s, so a cancellation that waits for it fails)."""
    deadline = asyncio.get_running_loop().time() + 4
    while asyncio.get_running_loop().time() < deadline:
        stats = stack.upstream.model_stats(upstream_model)
        if stats["disconnects"] > before["disconnects"]:
            return stats
        await asyncio.sleep(0.05)
    return stack.upstream.model_stats(upstream_model)


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream-before-its-first-token"])
async def test_a_client_that_times_out_before_the_answer_cancels_the_upstream_request(
    oa: openai.AsyncOpenAI, stack: Stack, stream: bool
) -> None:
    """The SDK gives up after 0.5 s on a model that answers after 5 s. Nothing of the answer has been
    sent (a non-stream request, or a stream still waiting for its first token, well within the edge's
    keep-alive interval), yet the provider request is cancelled at once, not left to run to its end."""
    model = stack.model("oa-slow")
    before = stack.upstream.model_stats(f"slow:{model}")
    with pytest.raises(openai.APITimeoutError):
        await oa.with_options(timeout=0.5).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=stream
        )
    stats = await _upstream_gave_up(stack, f"slow:{model}", before)
    assert stats["requests"] == before["requests"] + 1
    assert stats["disconnects"] == before["disconnects"] + 1 and stats["completed"] == before["completed"]


async def test_deprecated_model_works_with_a_notice_and_a_sunset_one_is_gone(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        auth = {"authorization": f"Bearer {stack.key}"}
        body = {"messages": [{"role": "user", "content": "hi"}]}
        old = await http.post(f"{stack.base_url}/chat/completions", headers=auth, json={**body, "model": stack.model("old")})
        gone = await http.post(f"{stack.base_url}/chat/completions", headers=auth, json={**body, "model": stack.model("gone")})
        refused = await http.post(f"{stack.base_url}/chat/completions", headers=auth,
                                  json={**body, "model": stack.model("old"), "max_tokens": 10**6})
    assert old.status_code == 200 and old.headers["deprecation"].startswith("@") and "sunset" in old.headers
    assert refused.status_code == 400 and refused.headers["deprecation"] == old.headers["deprecation"]  # errors too
    assert gone.status_code == 410 and {"deprecation", "sunset"} <= set(gone.headers)
    assert stack.model("oa-ok") in gone.json()["error"]["message"]
    async with httpx.AsyncClient() as http:
        listed = {m["id"] for m in (await http.get(f"{stack.base_url}/models", headers=auth)).json()["data"]}
        one = await http.get(f"{stack.base_url}/models/{stack.model('old')}", headers=auth)
    assert stack.model("old") in listed and stack.model("gone") not in listed  # retired: off the list
    assert one.status_code == 200 and one.headers["deprecation"] == old.headers["deprecation"]  # on the model too


async def test_the_end_user_reaches_providers_hashed_and_scoped_to_the_account(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    """OpenAI's `user` goes to the provider (its abuse attribution then points at one end user, not
    at the platform's whole account) as a per-account hash: never the customer's own id."""
    model = stack.model("oa-ok")
    await oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], user="alice")
    await oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                         safety_identifier="alice")
    await oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    *_, alice, by_safety_identifier, nobody = stack.upstream.requests_for(f"ok:{model}")
    expected = end_user_id(KeyEventV1.from_bytes(KEY_EXAMPLE.read_bytes()).account_id, "alice")
    assert alice["body"]["user"] == by_safety_identifier["body"]["user"] == expected != "alice"
    assert "user" not in nobody["body"]
