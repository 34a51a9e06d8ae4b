"""Script calls in batches, against the session's real Redis: calls made together share round trips
and each keeps its own reply or error; a Redis that lost its scripts, a dead Redis, and calls whose
requests went away before their batch was sent."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError, ResponseError

from services.edge.admission.script_batch import CALLS, ROUND_TRIPS, ScriptBatch

# counts its calls in KEYS[1]; ARGV[1] == "bad" is an error of that call alone
SCRIPT = """
if ARGV[1] == 'bad' then return redis.error_reply('bad call') end
redis.call('INCR', KEYS[1])
return ARGV[1]
"""


def _batch(client: redis.Redis, name: str, round_trips: int = 2) -> ScriptBatch:
    return ScriptBatch(client, client.register_script(SCRIPT), name, round_trips)


def _count(metric: object, name: str) -> float:
    value: float = metric.labels(name)._value.get()  # type: ignore[attr-defined]
    return value


@pytest.fixture
def counter() -> str:
    return f"tgtest:{uuid.uuid4().hex[:8]}:calls"


async def test_calls_made_together_share_round_trips_and_keep_their_own_replies(
    redis_client: redis.Redis, counter: str
) -> None:
    name = f"t{uuid.uuid4().hex[:6]}"
    batch = _batch(redis_client, name)
    args = [f"call-{i}" for i in range(200)] + ["bad"]
    replies = await asyncio.gather(*(batch.call([counter], [a]) for a in args), return_exceptions=True)
    assert replies[:200] == [a.encode() for a in args[:200]]
    assert isinstance(replies[200], ResponseError) and "bad call" in str(replies[200])  # its own error
    assert int(await redis_client.get(counter) or 0) == 200
    assert _count(CALLS, name) == 201
    assert _count(ROUND_TRIPS, name) <= 4  # two sent at once, then the rest together (up to 256 a trip)
    assert await batch.call([counter], ["alone"]) == b"alone"  # idle again: sent at once
    assert _count(ROUND_TRIPS, name) <= 5


async def test_a_redis_that_lost_its_scripts_still_runs_every_call_once(
    redis_client: redis.Redis, counter: str
) -> None:
    batch = _batch(redis_client, f"t{uuid.uuid4().hex[:6]}")
    await redis_client.script_flush()
    assert await batch.call([counter], ["one"]) == b"one"  # a call alone
    await redis_client.script_flush()
    replies = await asyncio.gather(*(batch.call([counter], [str(i)]) for i in range(50)))  # and batched
    assert replies == [str(i).encode() for i in range(50)]
    assert int(await redis_client.get(counter) or 0) == 51


async def test_a_dead_redis_fails_every_call_and_leaves_none_waiting() -> None:
    dead = redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        batch = _batch(dead, f"t{uuid.uuid4().hex[:6]}")
        results = await asyncio.wait_for(
            asyncio.gather(*(batch.call(["k"], [str(i)]) for i in range(20)), return_exceptions=True), 10
        )
    finally:
        await dead.aclose()
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_calls_whose_requests_went_away_before_their_batch_are_never_sent(
    redis_client: redis.Redis, counter: str
) -> None:
    batch = _batch(redis_client, f"t{uuid.uuid4().hex[:6]}", round_trips=1)
    batch._out = 1  # a round trip is out
    waiting = [asyncio.create_task(batch.call([counter], [str(i)])) for i in range(6)]
    await asyncio.sleep(0.01)  # all six queued
    waiting[0].cancel()  # the first in line: the next one sends instead
    waiting[3].cancel()
    await asyncio.sleep(0.01)
    batch._hand_over()  # the round trip is back
    replies = await asyncio.gather(*waiting, return_exceptions=True)
    assert [r for i, r in enumerate(replies) if i not in (0, 3)] == [b"1", b"2", b"4", b"5"]
    assert isinstance(replies[0], asyncio.CancelledError) and isinstance(replies[3], asyncio.CancelledError)
    assert int(await redis_client.get(counter) or 0) == 4
    assert batch._out == 0  # idle again
