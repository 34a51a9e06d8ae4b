"""Admission across three edge processes sharing one Redis (real servers, real HTTP clients).

Each test gets keys of its own (published on keys.v1 as billing does) and spreads its requests over
the three edges, so a limit kept per process instead of shared would admit up to three times too
much and fail here.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis.asyncio as redis

from infra.stack.platform import Platform
from services.common.events.catalog import PriceEntry
from services.common.events.keys import KeyEventV1
from services.common.pricing import TokenCounts, cost_micros
from services.common.redis_keys import key_base
from tests.e2e.conftest import KEY_EXAMPLE, now
from tests.e2e.edges import HI, PRICE_FIELDS, Edges, auth, edges_fixture, more_edges_fixture, redis_prefix  # noqa: F401 - module fixtures


async def _burst(edges: Edges, secret: str, n: int, body: dict[str, object], timeout: float = 60.0) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        return await asyncio.gather(*(
            client.post(f"{edges.url(i)}/v1/chat/completions", headers=auth(secret), json=body) for i in range(n)
        ))


async def test_rpm_50_admits_exactly_50_of_300_concurrent_requests_across_three_edges(edges: Edges) -> None:
    _, secret = await edges.new_key(requests_per_minute=50)
    replies = await _burst(edges, secret, 300, {"model": edges.model("ok"), "messages": HI})
    statuses = [r.status_code for r in replies]
    assert statuses.count(200) == 50 and statuses.count(429) == 250, statuses
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "50"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-should-retry" not in refused.headers  # the SDKs wait the Retry-After and retry
    served_by = {r.headers["x-ratelimit-remaining-requests"] for r in replies if r.status_code == 200}
    assert len(served_by) == 50  # one shared count: every admitted request saw a different remainder


async def test_tpm_admits_exactly_what_fits_across_three_edges(edges: Edges) -> None:
    _, secret = await edges.new_key(tokens_per_minute=360)  # ten reservations of 26 + 10 tokens
    replies = await _burst(edges, secret, 60, {"model": edges.model("slow"), "messages": HI, "max_tokens": 10})
    statuses = [r.status_code for r in replies]
    assert statuses.count(200) == 10 and statuses.count(429) == 50, statuses
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.headers["x-ratelimit-limit-tokens"] == "360"
    assert "tokens per minute" in refused.json()["error"]["message"]


async def test_concurrency_5_is_what_the_upstream_sees_at_most(edges: Edges) -> None:
    model = edges.model("concurrency")
    before = edges.stack.upstream.model_stats(f"slow:{model}")
    _, secret = await edges.new_key(max_concurrency=5)
    replies = await _burst(edges, secret, 30, {"model": model, "messages": HI, "max_tokens": 10})
    statuses = [r.status_code for r in replies]
    assert statuses.count(200) == 5 and statuses.count(429) == 25, statuses
    assert {r.json()["error"]["code"] for r in replies if r.status_code == 429} == {"concurrency_limit_exceeded"}
    stats = edges.stack.upstream.model_stats(f"slow:{model}")
    assert stats["requests"] - before.get("requests", 0) == 5
    assert stats["max_in_flight"] == 5
    # all five finished: their leases are back, so five more run at once
    again = await _burst(edges, secret, 5, {"model": model, "messages": HI, "max_tokens": 10})
    assert [r.status_code for r in again] == [200] * 5


async def test_budget_of_one_cent_is_never_exceeded_whatever_the_concurrency(edges: Edges, platform: Platform) -> None:
    key_id, secret = await edges.new_key(budget_micros=10_000, budget_window_seconds=18_000)  # $0.01 per 5 h
    # the recorded answer used 2006 prompt tokens (1920 cached) and 9 completion tokens: send a prompt
    # whose byte bound covers that, and max_tokens 9 — a worst case of $0.0054 against a real $0.002705
    body = {"model": edges.model("ok"), "messages": [{"role": "user", "content": "x" * 2100}], "max_tokens": 9}
    price = PriceEntry(id="p", model_id="m", effective_from=now(), **PRICE_FIELDS)
    spent = 0
    for _ in range(3):
        replies = await _burst(edges, secret, 100, body)
        for reply in replies:
            if reply.status_code == 200:
                usage = reply.json()["usage"]
                cached = usage["prompt_tokens_details"]["cached_tokens"]
                spent += cost_micros(price, TokenCounts(input=usage["prompt_tokens"] - cached, cached_input=cached,
                                                        output=usage["completion_tokens"]))
            else:
                assert reply.status_code == 429 and reply.json()["error"]["type"] == "insufficient_quota"
                assert reply.headers["x-should-retry"] == "false"  # the window resets in hours, not seconds
        assert 0 < spent <= 10_000
    assert spent == 2 * 2705  # a third request's worst case no longer fits: 5410 + 5400 > 10000
    client = redis.from_url(platform.redis.url)
    try:
        deadline = time.monotonic() + 5
        while True:  # settlements run just after each response
            counters = [k async for k in client.scan_iter(f"{redis_prefix(platform)}:*:{key_id}:budget:*")]
            if counters and int(await client.get(counters[0])) == spent:
                break
            assert time.monotonic() < deadline, "the budget counter never settled to the real spend"
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def test_200_clients_that_disconnect_mid_stream_leave_no_lease(edges: Edges, platform: Platform) -> None:
    key_id, secret = await edges.new_key(max_concurrency=200)
    body = {"model": edges.model("slow-stream"), "messages": HI, "stream": True}
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=0)

    async def read_one_chunk_and_leave(client: httpx.AsyncClient, i: int) -> int:
        async with client.stream("POST", f"{edges.url(i)}/v1/chat/completions", headers=auth(secret),
                                 json=body) as reply:
            async for _ in reply.aiter_bytes():
                break
            return reply.status_code

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        statuses = await asyncio.gather(*(read_one_chunk_and_leave(client, i) for i in range(200)))
    assert statuses == [200] * 200
    client_r = redis.from_url(platform.redis.url)
    try:
        pattern = f"{redis_prefix(platform)}:*:{key_id}:leases"
        deadline = time.monotonic() + 5
        while sum([await client_r.zcard(k) async for k in client_r.scan_iter(pattern)]) > 0:
            assert time.monotonic() < deadline, "leases leaked after the clients left"
            await asyncio.sleep(0.05)
    finally:
        await client_r.aclose()
    async with httpx.AsyncClient(timeout=30) as client:  # the key is not locked out
        reply = await client.post(f"{edges.url(0)}/v1/chat/completions", headers=auth(secret),
                                  json={"model": edges.model("ok"), "messages": HI})
    assert reply.status_code == 200


async def test_a_non_stream_client_that_gives_up_frees_its_concurrency_slot_at_once(edges: Edges) -> None:
    """Concurrency 1: the client gives up on a model that answers after 5 s. Its slot comes back when it
    leaves, not when the abandoned generation would have ended, so the key's next request gets in."""
    _, secret = await edges.new_key(max_concurrency=1)
    async with httpx.AsyncClient(timeout=0.5) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{edges.url(0)}/v1/chat/completions", headers=auth(secret),
                              json={"model": edges.model("slow"), "messages": HI})
    left_at = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            reply = await client.post(f"{edges.url(1)}/v1/chat/completions", headers=auth(secret),
                                      json={"model": edges.model("ok"), "messages": HI})
            if reply.status_code != 429:
                break
            assert reply.json()["error"]["code"] == "concurrency_limit_exceeded"
            await asyncio.sleep(0.05)
    assert reply.status_code == 200
    assert time.monotonic() - left_at < 3.5  # the abandoned request would have held the slot for 4.5 s more


async def test_requests_are_served_with_postgresql_stopped(edges: Edges, platform: Platform) -> None:
    _, secret = await edges.new_key(requests_per_minute=1000)
    platform.postgres.stop(fast=True)
    try:
        replies = await _burst(edges, secret, 6, {"model": edges.model("ok"), "messages": HI})
        assert [r.status_code for r in replies] == [200] * 6
    finally:
        platform.postgres.start()
        platform.postgres.wait_ready()


async def test_no_secret_appears_in_any_log_of_the_run(edges: Edges, platform: Platform) -> None:
    logs = list(platform.config.run_dir.rglob("*.log"))
    assert len(logs) >= 3
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert "req_" in text or "service_starting" in text  # the logs are really there
    for secret in [*edges.secrets, platform.admin_key, platform.key_hash_secret]:
        assert secret not in text and secret[3:] not in text


async def test_token_counts_have_a_per_key_limit_of_their_own_shared_by_every_edge(
    edges: Edges, platform: Platform
) -> None:
    """EDGE_COUNT_TOKENS_PER_MINUTE (600 here) is kept in Redis: with 598 counts already in this
    minute, three counts spread over three edges give two answers and one 429. The plan's own
    requests per minute are not touched: a key allowed one request a minute still generates."""
    key_id, secret = await edges.new_key(requests_per_minute=1)
    account = KeyEventV1.from_bytes(KEY_EXAMPLE.read_bytes()).account_id  # every e2e key's account
    client = redis.from_url(platform.redis.url)
    try:
        await client.hset(f"{key_base(redis_prefix(platform), account, key_id)}:counts", str(int(time.time())), 598)
    finally:
        await client.aclose()
    body = {"model": edges.stack.model("an-ok"), "messages": HI}
    headers = {"x-api-key": secret, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(timeout=30) as http:
        replies = [await http.post(f"{edges.url(i)}/v1/messages/count_tokens", headers=headers, json=body)
                   for i in range(3)]
        assert [r.status_code for r in replies] == [200, 200, 429]
        refused = replies[2].json()
        assert refused["type"] == "error" and refused["error"]["type"] == "rate_limit_error"
        assert "at most 600 per minute" in refused["error"]["message"]
        assert 1 <= int(replies[2].headers["retry-after"]) <= 60
        generated = await http.post(f"{edges.url(0)}/v1/chat/completions", headers=auth(secret),
                                    json={"model": edges.model("ok"), "messages": HI})
        assert generated.status_code == 200  # the plan's one request of the minute was not spent on counts
