"""Admission against a prepaid wallet in the real Redis: refused without credit, the worst case held
atomically under concurrency, settled to the real cost, and fail-closed when Redis is gone."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as redis

from services.common import redis_keys
from services.common.errors import DependencyUnavailable, InsufficientQuota
from services.common.events.keys import KeyEventV1
from services.edge.admission.limiter import Admission, OutagePolicy
from services.edge.admission.reservation import Reservation
from services.edge.admission.ticket import Ticket
from tests.edge.admission.conftest import PRICE, key_with
from tollgate.router.v1 import router_pb2

WORST = Reservation(input_tokens=100, output_tokens=100, cost_micros=1250)


def prepaid_key() -> KeyEventV1:
    key = key_with()
    return key.model_copy(update={"billing": "prepaid", "account_id": f"acct_{uuid.uuid4().hex[:8]}"})


async def _try(admission: Admission, key: KeyEventV1, request_id: str) -> Ticket | InsufficientQuota:
    try:
        return await admission.admit(key, WORST, PRICE, request_id)
    except InsufficientQuota as exc:
        return exc


async def test_a_prepaid_key_without_a_wallet_is_refused_with_insufficient_quota(admission: Admission) -> None:
    refused = await _try(admission, prepaid_key(), "req_a")
    assert isinstance(refused, InsufficientQuota)
    assert refused.retry_after is None and "prepaid balance" in str(refused)


async def test_concurrent_requests_hold_no_more_than_the_balance_and_settle_to_the_real_cost(
    admission: Admission, redis_client: redis.Redis, prefix: str
) -> None:
    key = prepaid_key()
    wallet = redis_keys.wallet(prefix, key.account_id)
    holds = redis_keys.holds(prefix, key.account_id)
    await redis_client.hset(wallet, mapping={"balance": 10_000, "version": 3})  # eight worst cases fit
    results = await asyncio.gather(*(_try(admission, key, f"req_{i}") for i in range(50)))
    admitted = [r for r in results if isinstance(r, Ticket)]
    assert len(admitted) == 8
    assert int(await redis_client.hget(wallet, "pending")) == 8 * 1250 == sum(
        int(v) for v in (await redis_client.hgetall(holds)).values())
    for ticket in admitted[:4]:  # each really cost 100 + 10 tokens → 250 + 100 = 350 micro-USD
        ticket.usage = router_pb2.Usage(input_tokens=100, output_tokens=10)
        admission.release(ticket)
    for ticket in admitted[4:]:  # failed before any output: nothing was spent, the hold goes at once
        admission.release(ticket)
    await admission.drain()
    assert {k.decode(): int(v) for k, v in (await redis_client.hgetall(holds)).items()} == {
        t.hold_id: 350 for t in admitted[:4]}
    assert int(await redis_client.hget(wallet, "pending")) == 4 * 350
    assert await redis_client.hget(wallet, "balance") == b"10000"  # only billing changes the balance


async def test_a_free_model_needs_no_credit_but_a_negative_balance_refuses_everything(
    admission: Admission, redis_client: redis.Redis, prefix: str
) -> None:
    key = prepaid_key()
    wallet = redis_keys.wallet(prefix, key.account_id)
    await redis_client.hset(wallet, mapping={"balance": 0, "version": 1})
    free = Reservation(input_tokens=10, output_tokens=10, cost_micros=0)
    assert isinstance(await admission.admit(key, free, None, "req_free"), Ticket)
    assert await redis_client.hlen(redis_keys.holds(prefix, key.account_id)) == 0
    await redis_client.hset(wallet, mapping={"balance": -5, "version": 2})
    with pytest.raises(InsufficientQuota):
        await admission.admit(key, free, None, "req_free_2")


async def test_prepaid_fails_closed_when_redis_is_unreachable() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    admission = Admission(dead, "tgdead", lease_ttl_seconds=30, policy=OutagePolicy(), max_request_seconds=60)
    with pytest.raises(DependencyUnavailable):
        await admission.admit(prepaid_key(), WORST, PRICE, "req_x")
    lenient = Admission(dead, "tgdead", 30, OutagePolicy(budgets="allow"), 60)
    assert not (await lenient.admit(prepaid_key(), WORST, PRICE, "req_y")).metered
    await dead.aclose()
