"""The per-key limit on token counts against the session's real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from services.common.errors import DependencyUnavailable, RateLimited
from services.edge.admission.count_limit import CountLimit
from tests.edge.admission.conftest import key_with


async def test_exactly_the_limit_is_taken_under_concurrency(redis_client: redis.Redis, prefix: str) -> None:
    limit = CountLimit(redis_client, prefix, per_minute=20, outage="allow")
    key = key_with()
    results = await asyncio.gather(*(limit.take(key) for _ in range(50)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert results.count(None) == 20 and len(refused) == 30
    assert all(0 < (r.retry_after or 0) <= 60 for r in refused)
    await limit.take(key_with())  # another key has a minute of its own


async def test_no_limit_makes_no_redis_call() -> None:
    dead = redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        await CountLimit(dead, "p", per_minute=0, outage="refuse").take(key_with())
    finally:
        await dead.aclose()


async def test_redis_down_follows_the_rate_limit_outage_policy() -> None:
    dead = redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        await CountLimit(dead, "p", per_minute=5, outage="allow").take(key_with())  # served unchecked
        with pytest.raises(DependencyUnavailable):
            await CountLimit(dead, "p", per_minute=5, outage="refuse").take(key_with())
    finally:
        await dead.aclose()
