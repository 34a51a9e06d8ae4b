"""Browsers on another origin, against the real edge: preflights answered without a key, the headers a
page reads exposed, and Anthropic's opt-in header required on the Messages API."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Stack

ORIGIN = "https://app.example.com"
HI = [{"role": "user", "content": "hi"}]


async def test_a_preflight_is_answered_without_a_key_and_allows_what_the_sdks_send(stack: Stack) -> None:
    sent = "authorization,content-type,x-stainless-os,x-stainless-retry-count,openai-organization"
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        reply = await client.options("/chat/completions", headers={
            "origin": ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": sent,
        })
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "POST" in reply.headers["access-control-allow-methods"]
    assert reply.headers["access-control-allow-headers"].lower() == sent
    assert int(reply.headers["access-control-max-age"]) > 0
    assert reply.headers["x-request-id"].startswith("req_")


async def test_a_browser_reads_the_answer_and_its_headers(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        reply = await client.post("/chat/completions", headers={
            "origin": ORIGIN, "authorization": f"Bearer {stack.key}",
        }, json={"model": stack.model("oa-ok"), "messages": HI})
        refused = await client.post("/chat/completions", headers={"origin": ORIGIN, "authorization": "Bearer sk-nope"},
                                    json={"model": stack.model("oa-ok"), "messages": HI})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    assert reply.headers["access-control-allow-origin"] == "*"
    exposed = {h.strip() for h in reply.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "retry-after", "x-ratelimit-remaining-requests"} <= exposed
    # an error is readable too (the page can show why), and still needs a valid key
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"


async def test_the_messages_api_wants_anthropics_browser_opt_in(stack: Stack) -> None:
    model = stack.model("an-ok")
    before = stack.upstream.model_stats(f"ok:{model}")["requests"]
    body = {"model": model, "max_tokens": 16, "messages": HI}
    headers = {"origin": ORIGIN, "x-api-key": stack.key, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        refused = await client.post("/messages", headers=headers, json=body)
        preflight = await client.options("/messages", headers={
            "origin": ORIGIN, "access-control-request-method": "POST",
            "access-control-request-headers": "x-api-key,anthropic-version,anthropic-dangerous-direct-browser-access",
        })
        allowed = await client.post(
            "/messages", headers={**headers, "anthropic-dangerous-direct-browser-access": "true"}, json=body
        )
        server_side = await client.post(  # no Origin: not a browser, no opt-in needed
            "/messages", headers={"x-api-key": stack.key, "anthropic-version": "2023-06-01"}, json=body
        )
    assert refused.status_code == 401
    assert refused.json() == {"type": "error", "error": {
        "type": "authentication_error",
        "message": "CORS requests must set 'anthropic-dangerous-direct-browser-access' header",
    }}
    assert refused.headers["access-control-allow-origin"] == "*"  # readable, as Anthropic's is
    assert preflight.status_code == 200
    assert allowed.status_code == 200 and allowed.json()["type"] == "message"
    assert allowed.headers["access-control-allow-origin"] == "*"
    assert server_side.status_code == 200
    assert stack.upstream.model_stats(f"ok:{model}")["requests"] == before + 2  # the refused one never went
