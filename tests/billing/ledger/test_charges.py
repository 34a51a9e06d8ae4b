"""Charges from usage.v1 into the ledger and the wallets in Redis, with the real broker, database and
Redis: priced exactly as metering prices, posted once per request whatever is redelivered or
replayed, only for prepaid accounts, and releasing the edges' holds together with the new balance."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import redis.asyncio as redis

from infra.stack.platform import Platform
from services.billing.ledger import Entry, post
from services.billing.ledger.charges import ChargeProcessor, ChargeWriter
from services.billing.ledger.wallets import Mirror, Wallets
from services.common import redis_keys
from services.common.events.catalog import PriceEntry
from services.common.events.usage import UsageEventV1
from services.common.kafka.batch_consumer import BatchBounds, BatchConsumer
from services.common.kafka.producer import EventProducer
from services.common.price_book import PriceNotYetKnown
from services.common.pricing import TokenCounts, cost_micros
from tests.billing.ledger.conftest import balance, wallet_sum
from tests.kafka_helpers import eventually, fresh_topics

NewAccount = Callable[..., Awaitable[str]]
EXAMPLE = Path(__file__).resolve().parents[3] / "services/common/events/examples/usage.v1/ok_stream.json"
PRICE = PriceEntry(id="price-led-1", model_id="m", effective_from=datetime(2026, 1, 1, tzinfo=UTC),
                   input_micros_per_mtok=2_500_000, cached_input_micros_per_mtok=1_250_000,
                   cache_write_micros_per_mtok=0, output_micros_per_mtok=10_000_000)


def usage(account_id: str, input_tokens: int, output_tokens: int, price: str | None = PRICE.id) -> UsageEventV1:
    base = UsageEventV1.from_bytes(EXAMPLE.read_bytes())
    return base.model_copy(update={
        "request_id": f"req_{uuid.uuid4().hex[:12]}", "account_id": account_id, "price_version": price,
        "tokens": base.tokens.model_copy(update={"input": input_tokens, "output": output_tokens}),
    })


def cost_of(event: UsageEventV1) -> int:
    return cost_micros(PRICE, TokenCounts(input=event.tokens.input, output=event.tokens.output))


def test_the_processor_prices_as_metering_does_and_waits_for_an_unknown_price() -> None:
    clock = [0.0]
    processor = ChargeProcessor({PRICE.id: PRICE}, wait_seconds=30, clock=lambda: clock[0])

    class Rec:
        def __init__(self, value: bytes) -> None:
            self.value = value

    event = usage("acct_x", 1234, 567)
    result = processor([Rec(event.to_bytes())])  # type: ignore[list-item]
    assert [c.cost_micros for c in result.rows] == [cost_of(event)] == [-(-(1234 * 2_500_000 + 567 * 10_000_000) // 10**6)]
    unknown = usage("acct_x", 1, 1, price="price-not-yet")
    try:
        processor([Rec(unknown.to_bytes())])  # type: ignore[list-item]
        raise AssertionError("an unknown price version must hold the batch back at first")
    except PriceNotYetKnown:
        pass
    clock[0] = 31
    late = processor([Rec(unknown.to_bytes()), Rec(b"not json")])  # type: ignore[list-item]
    assert not late.rows and len(late.dead_letters) == 2


async def test_charges_post_once_release_holds_and_replaying_all_usage_changes_nothing(
    pool: asyncpg.Pool, new_account: NewAccount, platform: Platform
) -> None:
    settings = await fresh_topics(platform.bus.bootstrap)
    prefix = f"tgled{uuid.uuid4().hex[:6]}"
    client = redis.from_url(platform.redis.url)
    wallets = Wallets(client, prefix)
    prepaid, invoiced = await new_account("prepaid"), await new_account("invoice")
    async with pool.acquire() as conn, conn.transaction():
        await post(conn, Entry(prepaid, "topup", 1_000_000, f"topup:{prepaid}"))
    events = [usage(prepaid, 1000 + i, 50 + i) for i in range(40)] + [usage(invoiced, 500, 5) for _ in range(5)]
    events.append(usage(prepaid, 0, 0))  # a request that cost nothing still lets go of its hold
    holds = redis_keys.holds(prefix, prepaid)
    for event in events:  # what the edges held at admission (more than the real cost)
        if event.account_id == prepaid:
            await client.hset(holds, event.request_id, cost_of(event) + 1000)
    await client.hset(redis_keys.wallet(prefix, prepaid), "pending", sum(
        int(v) for v in (await client.hgetall(holds)).values()))
    producer = EventProducer(settings, client_id="ledger-test")
    await producer.start()
    for event in events:
        await producer.publish("usage.v1", event.account_id, event)
    await producer.publish("usage.v1", events[0].account_id, events[0])  # a duplicate delivery

    async def consume(group: str) -> None:
        consumer = BatchConsumer(
            settings=settings, topics=["usage.v1"], group_id=group,
            processor=ChargeProcessor({PRICE.id: PRICE}, 0), writer=ChargeWriter(pool, wallets),
            dead_letter_topic="usage.v1.dlq", producer=producer, bounds=BatchBounds(max_records=7, max_wait_seconds=0.1),
        )
        await consumer.start()
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        try:
            await eventually(
                lambda: _charged(pool, prepaid, 40), 30, what="every priced request charged")
            await asyncio.sleep(0.5)  # and anything further it would (wrongly) post
        finally:
            stop.set()
            await task
            await consumer.stop()

    try:
        await consume(f"billing.charges.{uuid.uuid4().hex[:6]}")
        expected = 1_000_000 - sum(cost_of(e) for e in events if e.account_id == prepaid)
        assert await balance(pool, prepaid) == expected == await wallet_sum(pool, prepaid)
        assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE account_id = $1", invoiced) == 0
        assert await client.hlen(holds) == 0
        assert await wallets.read(prepaid) == (expected, 41, 0)  # balance, its version, nothing pending
        # a replay of all usage from offset 0 under a new group: not one more entry, the same balance
        await consume(f"billing.replay.{uuid.uuid4().hex[:6]}")
        assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE account_id = $1", prepaid) == 41
        assert await balance(pool, prepaid) == expected == await wallet_sum(pool, prepaid)
    finally:
        await producer.stop()
        await client.aclose()


async def _charged(pool: asyncpg.Pool, account_id: str, n: int) -> bool:
    count = await pool.fetchval(
        "SELECT count(*) FROM ledger_transactions WHERE account_id = $1 AND kind = 'charge'", account_id)
    return int(count) >= n


async def test_the_mirror_writes_changed_balances_never_backwards_and_sweeps_charged_holds(
    pool: asyncpg.Pool, new_account: NewAccount, platform: Platform
) -> None:
    prefix = f"tgmir{uuid.uuid4().hex[:6]}"
    client = redis.from_url(platform.redis.url)
    wallets = Wallets(client, prefix)
    mirror = Mirror(pool, wallets, interval=0.1, full_every=3600, hold_ttl=3600)
    account = await new_account("prepaid")
    try:
        async with pool.acquire() as conn, conn.transaction():
            await post(conn, Entry(account, "grant", 700, f"g:{account}"))
            await post(conn, Entry(account, "charge", -200, f"charge:req_done_{account}", reference=f"req_done_{account}"))
        # a stale write (an older version) arriving late never overwrites the newer balance
        await wallets.apply(account, 999_999, 1)
        await mirror.changed()
        assert await wallets.read(account) == (500, 2, 0)
        await wallets.apply(account, 700, 1)
        assert (await wallets.read(account) or (0,))[0] == 500
        # a hold whose charge is already in the ledger (its Redis write was lost) is swept; a live one stays
        await client.hset(redis_keys.holds(prefix, account), mapping={f"req_done_{account}": 250, "req_live": 40})
        await client.hset(redis_keys.wallet(prefix, account), "pending", 290)
        await mirror.everything()
        assert await wallets.holds(account) == {"req_live": 40}
        assert await wallets.read(account) == (500, 2, 40)
        stale = Mirror(pool, wallets, interval=0.1, full_every=3600, hold_ttl=0)  # and one that outlived its TTL
        await stale.everything()
        assert await wallets.holds(account) == {}
        assert await wallets.read(account) == (500, 2, 0)
    finally:
        await client.aclose()


async def test_a_charge_released_before_the_edge_settles_is_not_resurrected(
    new_account: NewAccount, platform: Platform, pool: asyncpg.Pool
) -> None:
    """The race between billing's charge and the edge's settle, in the order that could leak: billing
    first. The edge's settle must not re-create the hold billing just released."""
    from services.edge.admission.limiter import SCRIPTS

    prefix = f"tgrace{uuid.uuid4().hex[:6]}"
    client = redis.from_url(platform.redis.url)
    account = await new_account("prepaid")
    wallet, holds = redis_keys.wallet(prefix, account), redis_keys.holds(prefix, account)
    try:
        await client.hset(holds, "req_1", 5000)
        await client.hset(wallet, mapping={"balance": 10_000, "version": 1, "pending": 5000})
        await Wallets(client, prefix).apply(account, 7_000, 2, ["req_1"])
        settle = client.register_script((SCRIPTS / "settle.lua").read_text())
        base = redis_keys.key_base(prefix, account, "key_x")
        await settle(keys=[f"{base}:tpm", f"{base}:leases", f"{base}:budget", wallet, holds],
                     args=[-1, 0, "", -1, -2000, "req_1"])
        assert await client.hlen(holds) == 0
        assert await Wallets(client, prefix).read(account) == (7_000, 2, 0)
    finally:
        await client.aclose()

