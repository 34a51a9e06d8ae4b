"""keys.v1's outbox: a committed change that was not published (Kafka down, a crash between commit and
publish) is published by the background loop, with version = state_version; and migration 0002 turns
0001's data into outbox rows whose versions are above every version published before it."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import asyncpg

from infra.stack.platform import Platform
from services.billing.__main__ import MIGRATIONS
from services.billing.outbox import OutboxPublisher
from services.common.events.keys import KeyEventV1
from services.common.kafka.producer import EventProducer
from services.common.kafka.snapshot import CompactedSnapshot
from services.common.pg_migrate import migrate
from tests.billing.conftest import client_settings, event_after


async def _committed_but_unpublished(conn: asyncpg.Connection) -> str:
    """A key written the way a crashed request would leave it: committed, never published."""
    suffix = uuid.uuid4().hex[:12]
    await conn.execute("INSERT INTO accounts (id, name) VALUES ($1, 'outbox test')", f"acct_{suffix}")
    await conn.execute("INSERT INTO plans (id, name, requests_per_minute) VALUES ($1, 'p', 42)", f"plan_{suffix}")
    await conn.execute(
        "INSERT INTO api_keys (id, account_id, plan_id, name, key_hash, prefix)"
        " VALUES ($1, $2, $3, 'k', $4, 'tg-outbox')",
        f"key_{suffix}", f"acct_{suffix}", f"plan_{suffix}", uuid.uuid4().bytes * 2,
    )
    return f"key_{suffix}"


async def test_the_loop_publishes_what_was_committed_while_kafka_was_unreachable(
    platform: Platform, billing_dsn: str, keys_seen: CompactedSnapshot[KeyEventV1]
) -> None:
    conn = await asyncpg.connect(billing_dsn)
    pool = await asyncpg.create_pool(billing_dsn, min_size=1, max_size=2)
    assert pool is not None
    producer = EventProducer(client_settings(platform), client_id="outbox-test")  # not started: "Kafka down"
    outbox = OutboxPublisher(pool, producer, interval=0.2)
    stop = asyncio.Event()
    loop = asyncio.create_task(outbox.run(stop))
    try:
        key_id = await _committed_but_unpublished(conn)
        assert await outbox.flush(timeout=2) is False  # nothing can be published yet
        await asyncio.sleep(0.5)
        row = await conn.fetchrow("SELECT state_version, published_version FROM api_keys WHERE id = $1", key_id)
        assert row["published_version"] == 0 and row["state_version"] > 0 and keys_seen.get(key_id) is None

        await producer.start()  # Kafka is back: no request comes, the loop alone must catch up
        event = await event_after(keys_seen, key_id, timeout=10)
        assert event.version == row["state_version"] and event.limits.requests_per_minute == 42
        published = await conn.fetchval("SELECT published_version FROM api_keys WHERE id = $1", key_id)
        assert published == row["state_version"]

        # a later change in another process (no flush from this one) is caught by the loop too
        await conn.execute(
            "UPDATE plans SET requests_per_minute = 43 WHERE id = (SELECT plan_id FROM api_keys WHERE id = $1)", key_id
        )
        await conn.execute("UPDATE api_keys SET state_version = nextval('key_state_seq') WHERE id = $1", key_id)
        later = await event_after(keys_seen, key_id, event.version, timeout=10)
        assert later.limits.requests_per_minute == 43
    finally:
        stop.set()
        await loop
        await producer.stop()
        await pool.close()
        await conn.close()


async def test_migration_0002_backfills_versions_above_everything_published_before(
    platform: Platform, tmp_path: Path
) -> None:
    dsn = platform.postgres.dsn(f"billing_mig_{uuid.uuid4().hex[:8]}")
    only_first = tmp_path / "migrations"
    only_first.mkdir()
    shutil.copy(MIGRATIONS / "0001_accounts_plans_keys.sql", only_first)
    assert await migrate(dsn, only_first, create_database=True) == ["0001_accounts_plans_keys.sql"]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO accounts (id, name, version) VALUES ('acct_old', 'old', 4)")
        await conn.execute("INSERT INTO plans (id, name, version) VALUES ('plan_old', 'old', 9)")
        for i in range(3):
            await conn.execute(
                "INSERT INTO api_keys (id, account_id, plan_id, key_hash, prefix, version)"
                " VALUES ($1, 'acct_old', 'plan_old', $2, 'tg-old', $3)", f"key_old{i}", bytes([i]) * 32, i + 1,
            )
        # the last version 0001's publisher sent for key_old2: 3 + 9 + 4
        later = sorted(p.name for p in MIGRATIONS.glob("*.sql"))[1:]  # 0002 and whatever came after it
        assert later[0] == "0002_management_outbox.sql" and await migrate(dsn, MIGRATIONS) == later
        rows = await conn.fetch("SELECT state_version, published_version, kind FROM api_keys ORDER BY id")
        versions = [r["state_version"] for r in rows]
        assert min(versions) > 16 and len(set(versions)) == 3
        assert {(r["published_version"], r["kind"]) for r in rows} == {(0, "inference")}
        fresh = await conn.fetchval(
            "INSERT INTO api_keys (id, account_id, plan_id, key_hash, prefix) VALUES ('key_new', 'acct_old',"
            " 'plan_old', $1, 'tg-new') RETURNING state_version", b"\x09" * 32,
        )
        assert fresh > max(versions)
    finally:
        await conn.close()
