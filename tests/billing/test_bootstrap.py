"""The demo key of `make run`: created by billing (its owner), stored only as a keyed hash, published
on keys.v1 so that every edge can authenticate it."""

from __future__ import annotations

import asyncpg

from infra.stack.platform import Platform
from services.billing.bootstrap import DEMO_KEY, bootstrap
from services.common.api_keys import hash_key
from services.common.events.keys import KeyEventV1
from services.common.kafka.producer import EventProducer
from services.edge.auth import KeyIndex
from tests.kafka_helpers import ClientSettings, read_all


async def test_demo_key_is_stored_hashed_and_published(platform: Platform) -> None:
    secret = platform.demo_key()
    dsn = platform.postgres.dsn("tollgate_billing")
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", DEMO_KEY)
        dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM api_keys t")
    finally:
        await conn.close()
    assert row is not None and secret not in dump and secret[3:] not in dump
    assert row["key_hash"].hex() == hash_key(secret, platform.key_hash_secret)
    assert secret.startswith(row["prefix"]) and len(row["prefix"]) < 16

    topic = platform.config.topic_prefix + "keys.v1"
    events = [KeyEventV1.from_bytes(v) for k, v in await read_all(platform.bus.bootstrap, topic) if k == DEMO_KEY.encode() and v]
    assert events and secret not in events[-1].model_dump_json()
    index = KeyIndex(platform.key_hash_secret)
    index.apply(DEMO_KEY, events[-1])
    assert index.authenticate(secret).account_id == "acct_demo"


async def test_bootstrap_keeps_the_key_and_reissues_only_when_the_secret_is_lost(platform: Platform) -> None:
    settings = ClientSettings(kafka_bootstrap=platform.bus.bootstrap, topic_prefix=platform.config.topic_prefix)
    producer = EventProducer(settings, client_id="bootstrap-test")
    await producer.start()
    dsn = platform.postgres.dsn("tollgate_billing")
    try:
        assert await bootstrap(dsn, producer, platform.key_hash_secret, have_secret=True) is None
        new = await bootstrap(dsn, producer, platform.key_hash_secret, have_secret=False)
    finally:
        await producer.stop()
    assert new is not None and new != platform.demo_key()
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval("SELECT encode(key_hash, 'hex') FROM api_keys WHERE id = $1", DEMO_KEY)
    finally:
        await conn.close()
    assert stored == hash_key(new, platform.key_hash_secret)
    platform.demo_key_file.write_text(new + "\n")  # later tests use the current secret
