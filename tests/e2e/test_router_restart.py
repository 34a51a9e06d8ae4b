"""A router restarted under the edge (a deploy): the streams it is serving finish, the edge answers
503 in the API's own format while no router listens, and it reopens its Session to the new router
without being restarted itself. Real processes: SIGTERM, the router's drain, a new router process."""

from __future__ import annotations

import asyncio

import httpx
import openai

from tests.e2e.conftest import Stack

HI = [{"role": "user", "content": "hi"}]


async def test_a_router_restart_finishes_its_streams_and_the_edge_reconnects(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    router = stack.platform.services["router"]
    model = stack.model("oa-slow-stream")  # 166 chunks 50 ms apart: about 8 s, within the 10 s grace
    stream = await oa.chat.completions.create(model=model, messages=HI, stream=True)
    chunks = [await anext(stream)]
    stopping = asyncio.create_task(asyncio.to_thread(router.stop))  # SIGTERM: the router drains
    async for chunk in stream:
        chunks.append(chunk)
    await stopping
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons == ["stop"]  # finished, not cut: the drain let the call run to its end
    assert stack.upstream.model_stats(f"slow-stream:{model}")["completed"] == 1

    async with httpx.AsyncClient(timeout=10) as http:  # no router: a prompt 503, in OpenAI's format
        reply = await http.post(
            f"{stack.base_url}/chat/completions", headers={"authorization": f"Bearer {stack.key}"},
            json={"model": stack.model("oa-ok"), "messages": HI},
        )
    assert reply.status_code == 503
    assert reply.json()["error"]["type"] == "api_error"

    router.start()
    await asyncio.to_thread(router.wait_ready)
    answer = None
    for _ in range(20):  # the edge's channel retries the router at least every second (backoff cap)
        try:
            answer = await oa.chat.completions.create(model=stack.model("oa-ok"), messages=HI)
            break
        except openai.InternalServerError:
            await asyncio.sleep(0.1)
    assert answer is not None and answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0
