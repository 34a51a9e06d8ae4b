"""The catalog's tables: records match their columns, price versions and the audit trail cannot be
rewritten, migration 0002 keeps versions growing, and the outbox loses nothing while Kafka is away."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from infra.stack.platform import Platform
from services.catalog import store
from services.catalog.outbox import OutboxPublisher
from services.catalog.records import BOOKKEEPING, RECORDS, TABLES, ModelRecord
from services.common.events.catalog import CatalogEventV1
from services.common.kafka.producer import EventProducer
from services.common.kafka.snapshot import CompactedSnapshot
from services.common.pg_migrate import migrate
from tests.catalog.conftest import MIGRATIONS, new_database
from tests.conftest import unique
from tests.kafka_helpers import fresh_topics


async def test_each_record_is_exactly_its_tables_content_columns(platform: Platform) -> None:
    conn = await asyncpg.connect(await new_database(platform))
    try:
        for kind, table in TABLES.items():
            rows = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
            )
            columns = {r["column_name"] for r in rows}
            assert columns - BOOKKEEPING[kind] == set(RECORDS[kind].model_fields), kind
    finally:
        await conn.close()


async def test_price_versions_and_audit_records_cannot_be_rewritten(platform: Platform) -> None:
    conn = await asyncpg.connect(await new_database(platform))
    try:
        await store.put(conn, ModelRecord(id="m", display_name="m", context_length=8, max_output_tokens=8),
                        store.Actor("test"))
        await conn.execute(
            "INSERT INTO prices (id, model_id, effective_from, input_micros_per_mtok, cached_input_micros_per_mtok,"
            " cache_write_micros_per_mtok, output_micros_per_mtok) VALUES ('p1', 'm', now(), 1, 1, 1, 1)"
        )
        with pytest.raises(asyncpg.RaiseError, match="immutable"):
            await conn.execute("UPDATE prices SET output_micros_per_mtok = 2 WHERE id = 'p1'")
        with pytest.raises(asyncpg.RaiseError, match="never deleted"):
            await conn.execute("DELETE FROM prices WHERE id = 'p1'")
        await conn.execute("UPDATE prices SET published_version = 99 WHERE id = 'p1'")  # bookkeeping may move
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE catalog_audit SET actor = 'someone else'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM catalog_audit")
    finally:
        await conn.close()


async def test_migration_0002_starts_versions_above_everything_published_before(
    platform: Platform, tmp_path: Path
) -> None:
    dsn = platform.postgres.dsn(unique("catalog_mig").lower())
    first = tmp_path / "migrations"
    first.mkdir()
    shutil.copy(MIGRATIONS / "0001_models_prices.sql", first)
    assert await migrate(dsn, first, create_database=True) == ["0001_models_prices.sql"]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO models (id, display_name, context_length, max_output_tokens, version)"
                           " VALUES ('old', 'Old', 8, 8, 41)")
        await conn.execute("INSERT INTO aliases (id, target, version) VALUES ('o', 'old', 3)")
        applied = await migrate(dsn, MIGRATIONS)
        assert applied[0] == "0002_outbox_audit_review.sql"  # and whatever came after it
        rows = await conn.fetch("SELECT state_version, published_version FROM models UNION ALL "
                                "SELECT state_version, published_version FROM aliases")
        assert all(r["state_version"] > 41 and r["published_version"] == 0 for r in rows)  # re-published once
        fresh = (await store.put(conn, ModelRecord(id="new", display_name="n", context_length=8, max_output_tokens=8),
                                 store.Actor("test"))).version
        assert fresh > max(r["state_version"] for r in rows)
    finally:
        await conn.close()


async def test_a_change_made_while_kafka_is_away_is_published_when_it_is_back(platform: Platform) -> None:
    dsn = await new_database(platform)
    settings = await fresh_topics(platform.bus.bootstrap)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    assert pool is not None
    producer = EventProducer(settings, client_id="outbox-test")  # not started: Kafka is "down"
    outbox = OutboxPublisher(pool, producer, interval=0.2)
    stop = asyncio.Event()
    loop = asyncio.create_task(outbox.run(stop))
    seen = CompactedSnapshot(settings, "catalog.v1", CatalogEventV1.from_bytes)
    try:
        async with pool.acquire() as conn:
            first = await store.put(conn, ModelRecord(id="m", display_name="one", context_length=8,
                                                      max_output_tokens=8), store.Actor("test"))
            second = await store.put(conn, ModelRecord(id="m", display_name="two", context_length=8,
                                                       max_output_tokens=8), store.Actor("test"))
        assert second.version > first.version
        assert not await outbox.flush(2.0)  # nothing could be published, nothing is lost
        await producer.start()
        await seen.start()
        await asyncio.wait_for(seen.ready.wait(), 20)
        deadline = asyncio.get_running_loop().time() + 10
        while seen.get("model:m") is None:
            assert asyncio.get_running_loop().time() < deadline, "the outbox never published"
            await asyncio.sleep(0.05)
        event = seen.get("model:m")
        assert event is not None and event.version == second.version
        assert event.entity.display_name == "two"  # type: ignore[union-attr]
        assert event.updated_at <= datetime.now(UTC)
    finally:
        stop.set()
        await loop
        await seen.stop()
        await producer.stop()
        await pool.close()
