"""Admission against a real Redis: each limit holds exactly under concurrency, reservations settle to
the truth, leases are released or reclaimed, and a Redis outage follows the written policy."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from infra.stack.platform import Platform
from services.common.errors import DependencyUnavailable, InsufficientQuota, Overloaded, RateLimited
from services.common.pricing import TokenCounts, cost_micros
from services.common.redis_keys import key_base
from services.edge.admission.limiter import Admission, OutagePolicy
from services.edge.admission.reservation import Reservation
from services.edge.admission.ticket import Ticket
from tests.edge.admission.conftest import PRICE, key_with
from tollgate.router.v1 import router_pb2

SMALL = Reservation(input_tokens=26, output_tokens=10, cost_micros=0)


async def _try(admission: Admission, *args: object) -> Ticket | Exception:
    try:
        return await admission.admit(*args)  # type: ignore[arg-type]
    except (RateLimited, InsufficientQuota) as exc:
        return exc


async def _settled(admission: Admission) -> None:
    await admission.drain()
    await asyncio.sleep(0)


async def test_settlements_are_batched_and_survive_redis_losing_its_scripts(
    admission: Admission, redis_client: redis.Redis, prefix: str
) -> None:
    """Settled in pipelined batches by script hash; a Redis that forgot its scripts (a restart) still
    gets every settlement, through the per-call path that loads the script again."""
    key = key_with(tokens_per_minute=3600)
    admitted = [await admission.admit(key, SMALL, None) for _ in range(20)]
    bucket = f"{key_base(prefix, key.account_id, key.key_id)}:tpm"
    assert sum(int(v) for v in (await redis_client.hgetall(bucket)).values()) == 20 * 36
    await redis_client.script_flush()
    for ticket in admitted:
        ticket.usage = router_pb2.Usage(input_tokens=10, output_tokens=2)
        admission.release(ticket)  # 20 releases in one turn of the loop: one batch
    await _settled(admission)
    assert sum(int(v) for v in (await redis_client.hgetall(bucket)).values()) == 20 * 12


async def test_requests_per_minute_admits_exactly_the_limit_under_concurrency(admission: Admission) -> None:
    key = key_with(requests_per_minute=50)
    results = await asyncio.gather(*(_try(admission, key, SMALL, None) for _ in range(300)))
    admitted = [r for r in results if isinstance(r, Ticket)]
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(admitted) == 50 and len(refused) == 250
    assert all(r.code == "rate_limit_exceeded" and r.retry_after and 0 < r.retry_after <= 60 for r in refused)
    assert all(r.should_retry is None for r in refused)  # worth the SDK's wait for the Retry-After
    assert refused[0].headers["x-ratelimit-remaining-requests"] == "0"
    assert refused[0].headers["x-ratelimit-limit-requests"] == "50"
    remaining = sorted(int(t.headers["x-ratelimit-remaining-requests"]) for t in admitted)
    assert remaining == list(range(50))  # each admission saw the count of the ones before it


async def test_an_anthropic_client_gets_the_headers_in_anthropics_dialect(admission: Admission) -> None:
    key = key_with(requests_per_minute=1, tokens_per_minute=1000)
    ticket = await admission.admit(key, SMALL, None, "req_a", "anthropic")
    assert ticket.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert ticket.headers["anthropic-ratelimit-tokens-remaining"] == str(1000 - SMALL.tokens)
    assert not [h for h in ticket.headers if h.startswith("x-ratelimit-")]
    refused = await _try(admission, key, SMALL, None, "req_b", "anthropic")
    assert isinstance(refused, RateLimited) and refused.headers["anthropic-ratelimit-requests-limit"] == "1"


async def test_tokens_per_minute_reserves_the_worst_case_and_settles_to_the_real_count(
    admission: Admission, redis_client: redis.Redis, prefix: str
) -> None:
    key = key_with(tokens_per_minute=360)  # exactly ten reservations of 36 tokens
    results = await asyncio.gather(*(_try(admission, key, SMALL, None) for _ in range(40)))
    admitted = [r for r in results if isinstance(r, Ticket)]
    assert len(admitted) == 10
    bucket = f"{key_base(prefix, key.account_id, key.key_id)}:tpm"
    assert sum(int(v) for v in (await redis_client.hgetall(bucket)).values()) == 360
    for ticket in admitted:  # each really used 12 tokens: 24 of its 36 come back
        ticket.usage = router_pb2.Usage(input_tokens=10, output_tokens=2)
        admission.release(ticket)
    await _settled(admission)
    assert sum(int(v) for v in (await redis_client.hgetall(bucket)).values()) == 120
    more = await asyncio.gather(*(_try(admission, key, SMALL, None) for _ in range(10)))
    assert sum(isinstance(r, Ticket) for r in more) == 6  # (360 - 120) // 36


async def test_a_request_larger_than_the_tpm_limit_is_refused_as_never_fitting(admission: Admission) -> None:
    key = key_with(tokens_per_minute=30)
    with pytest.raises(RateLimited, match="Request too large") as err:
        await admission.admit(key, SMALL, None)
    assert err.value.retry_after is None
    assert err.value.should_retry is False  # the SDKs' own retries would be refused the same way


async def test_concurrency_leases_are_released_and_reclaimed(admission: Admission, redis_client: redis.Redis,
                                                              prefix: str) -> None:
    key = key_with(max_concurrency=5)
    results = await asyncio.gather(*(_try(admission, key, SMALL, None) for _ in range(20)))
    held = [r for r in results if isinstance(r, Ticket)]
    assert len(held) == 5
    assert all(isinstance(r, RateLimited) and r.code == "concurrency_limit_exceeded" for r in results
               if not isinstance(r, Ticket))
    admission.release(held.pop())
    await _settled(admission)
    held.append(await admission.admit(key, SMALL, None))  # the freed slot is usable at once
    with pytest.raises(RateLimited):
        await admission.admit(key, SMALL, None)

    # an edge that dies never releases: its leases expire after the TTL (no renewal)
    short = Admission(redis_client, prefix, lease_ttl_seconds=3, policy=OutagePolicy(), max_request_seconds=600)
    dead_key = key_with(max_concurrency=1)
    await short.admit(dead_key, SMALL, None)
    with pytest.raises(RateLimited):
        await short.admit(dead_key, SMALL, None)
    await asyncio.sleep(3.2)
    assert isinstance(await short.admit(dead_key, SMALL, None), Ticket)


async def test_renewal_keeps_a_long_request_lease_alive(redis_client: redis.Redis, prefix: str) -> None:
    admission = Admission(redis_client, prefix, lease_ttl_seconds=3, policy=OutagePolicy(), max_request_seconds=600)
    key = key_with(max_concurrency=1)
    ticket = await admission.admit(key, SMALL, None)
    for _ in range(4):  # 4.8 s > the 3 s TTL, renewed every second
        await asyncio.sleep(1.2)
        assert await admission.renew_leases() == 1
    with pytest.raises(RateLimited):
        await admission.admit(key, SMALL, None)
    admission.release(ticket)
    await _settled(admission)
    assert await admission.renew_leases() == 0
    assert isinstance(await admission.admit(key, SMALL, None), Ticket)


async def test_budget_never_exceeded_and_counter_equals_real_spend(
    admission: Admission, redis_client: redis.Redis, prefix: str
) -> None:
    key = key_with(budget_micros=10_000, budget_window_seconds=18_000)  # $0.01 per 5 h
    worst = Reservation(2124, 9, cost_micros(PRICE, TokenCounts(input=2124, output=9)))
    real = router_pb2.Usage(input_tokens=86, cached_input_tokens=1920, output_tokens=9)
    real_cost = cost_micros(PRICE, TokenCounts(input=86, cached_input=1920, output=9))
    assert (worst.cost_micros, real_cost) == (5400, 2705)
    spent = 0
    for _ in range(5):  # waves of 50 concurrent requests, each admitted one settled with its real usage
        wave = await asyncio.gather(*(_try(admission, key, worst, PRICE) for _ in range(50)))
        for result in wave:
            if isinstance(result, Ticket):
                result.usage = real
                admission.release(result)
                spent += real_cost
            else:
                assert isinstance(result, InsufficientQuota) and result.code == "insufficient_quota"
        await _settled(admission)
        assert spent <= 10_000
    assert spent == 2 * real_cost  # a third would need 5410 + 5400 > 10000
    counters = [k async for k in redis_client.scan_iter(f"{key_base(prefix, key.account_id, key.key_id)}:budget:*")]
    assert len(counters) == 1
    window_start = int(counters[0].decode().rsplit(":", 1)[1])
    assert window_start % 18_000 == 0  # aligned to the epoch, keyed by the window's start
    assert int(await redis_client.get(counters[0])) == spent


async def test_a_request_that_fails_before_output_returns_its_whole_reservation(
    admission: Admission, redis_client: redis.Redis, prefix: str
) -> None:
    key = key_with(budget_micros=10_000, budget_window_seconds=3600, tokens_per_minute=1000)
    ticket = await admission.admit(key, Reservation(100, 100, 1250), PRICE)
    admission.release(ticket)  # no output, no usage: nothing was consumed
    await _settled(admission)
    budget = [k async for k in redis_client.scan_iter(f"{key_base(prefix, key.account_id, key.key_id)}:budget:*")]
    assert int(await redis_client.get(budget[0])) == 0
    assert sum(int(v) for v in (await redis_client.hgetall(f"{key_base(prefix, key.account_id, key.key_id)}:tpm")).values()) == 0

    cut = await admission.admit(key, Reservation(100, 100, 1250), PRICE)
    cut.output_started = True  # the client went away mid-stream: the edge keeps the worst case
    admission.release(cut)
    admission.release(cut)  # releasing twice settles once
    await _settled(admission)
    assert int(await redis_client.get(budget[0])) == 1250


async def test_keys_without_limits_never_touch_redis(prefix: str) -> None:
    dead = redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    admission = Admission(dead, prefix, 30, OutagePolicy(), 600)
    ticket = await admission.admit(key_with(), SMALL, None)
    assert not ticket.metered and ticket.headers == {}
    await dead.aclose()


async def test_redis_outage_fails_closed_on_budgets_and_open_on_rate_limits(prefix: str) -> None:
    dead = redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    default = Admission(dead, prefix, 30, OutagePolicy(), 600)
    with pytest.raises(DependencyUnavailable) as err:
        await default.admit(key_with(budget_micros=1000, budget_window_seconds=3600), SMALL, PRICE)
    assert err.value.http_status == 503 and err.value.retry_after == 1.0
    allowed = await default.admit(key_with(requests_per_minute=5), SMALL, None)
    assert not allowed.metered
    strict = Admission(dead, prefix, 30, OutagePolicy(rate_limits="refuse"), 600)
    with pytest.raises(DependencyUnavailable):
        await strict.admit(key_with(requests_per_minute=5), SMALL, None)
    lenient = Admission(dead, prefix, 30, OutagePolicy(budgets="allow"), 600)
    assert not (await lenient.admit(key_with(budget_micros=1, budget_window_seconds=60), SMALL, None)).metered
    await dead.aclose()


async def test_a_burst_larger_than_the_pool_waits_its_turn_and_is_never_admitted_unchecked(
    platform: Platform, prefix: str
) -> None:
    """Three connections, 40 concurrent requests of one key limited to 10 a minute. The pool's own
    wait gives up at once (1 ms); its "no connection available" is the error an outage raises, which
    the outage policy serves unchecked. The gate keeps the checks within the pool, so exactly 10 pass."""
    pool = redis.BlockingConnectionPool.from_url(platform.redis.url, max_connections=3, timeout=0.001)
    client = redis.Redis(connection_pool=pool)
    try:
        admission = Admission(client, prefix, 30, OutagePolicy(), 600, checks_at_once=1, queue_seconds=10)
        key = key_with(requests_per_minute=10)
        results = await asyncio.gather(*(admission.admit(key, SMALL, None) for _ in range(40)),
                                       return_exceptions=True)
    finally:
        await client.aclose(close_connection_pool=True)
    admitted = [r for r in results if isinstance(r, Ticket)]
    assert len(admitted) == 10 and all(r.metered for r in admitted)
    assert all(isinstance(r, RateLimited) for r in results if not isinstance(r, Ticket))


async def test_a_request_that_cannot_get_its_turn_in_time_is_refused_as_overloaded(
    redis_client: redis.Redis, prefix: str
) -> None:
    admission = Admission(redis_client, prefix, 30, OutagePolicy(), 600, checks_at_once=1, queue_seconds=0.05)
    busy = admission._slots  # every slot taken, as by checks that are slow to come back
    await busy.acquire()
    try:
        with pytest.raises(Overloaded) as refused:
            await admission.admit(key_with(requests_per_minute=10), SMALL, None)
    finally:
        busy.release()
    assert refused.value.http_status == 503 and refused.value.retry_after == 1.0
    assert isinstance(await admission.admit(key_with(requests_per_minute=10), SMALL, None), Ticket)


async def test_a_client_that_leaves_as_its_turn_comes_is_not_admitted(redis_client: redis.Redis, prefix: str) -> None:
    """Cancelled in the loop iteration its slot frees: the request stops there (``asyncio.wait_for``
    before 3.12 would swallow that cancellation and admit it for nobody), and the slot is free again."""
    admission = Admission(redis_client, prefix, 30, OutagePolicy(), 600, checks_at_once=1, queue_seconds=10)
    busy = admission._slots
    await busy.acquire()
    waiting = asyncio.ensure_future(admission.admit(key_with(requests_per_minute=10), SMALL, None))
    await asyncio.sleep(0.01)
    busy.release()  # its turn comes ...
    waiting.cancel()  # ... as the client leaves
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not busy.locked()
