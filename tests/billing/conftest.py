"""Fixtures of billing's tests: the real billing database and keys.v1 as an edge sees it.

``manage`` runs the management API in this process exactly as the service wires it (pool, producer,
the outbox publisher loop), against the session's real PostgreSQL and Kafka; ``keys_seen`` follows
keys.v1 with the edges' own snapshot class, so an assertion on it is an assertion on what edges see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest

from infra.stack.platform import Platform
from services.billing.manage.context import Deps
from services.billing.manage.dispatch import dispatch
from services.billing.outbox import OutboxPublisher
from services.common.events.keys import KeyEventV1
from services.common.kafka.producer import EventProducer
from services.common.kafka.snapshot import CompactedSnapshot
from services.common.manage.context import Caller
from tests.kafka_helpers import ClientSettings, eventually

ADMIN = Caller(account_id=None)


def client_settings(platform: Platform) -> ClientSettings:
    return ClientSettings(kafka_bootstrap=platform.bus.bootstrap, topic_prefix=platform.config.topic_prefix)


@pytest.fixture(scope="session")
def billing_dsn(platform: Platform) -> str:
    return platform.postgres.dsn("tollgate_billing")


@pytest.fixture(scope="session")
async def keys_seen(platform: Platform) -> AsyncIterator[CompactedSnapshot[KeyEventV1]]:
    snapshot = CompactedSnapshot(client_settings(platform), "keys.v1", KeyEventV1.from_bytes)
    await snapshot.start()
    await asyncio.wait_for(snapshot.ready.wait(), 30)
    yield snapshot
    await snapshot.stop()


async def event_after(
    seen: CompactedSnapshot[KeyEventV1], key_id: str, version: int = -1, timeout: float = 10.0
) -> KeyEventV1:
    """The key's event once edges hold a version newer than ``version``."""

    async def newer() -> bool:
        event = seen.get(key_id)
        return event is not None and event.version > version

    await eventually(newer, timeout, what=f"keys.v1 event of {key_id} newer than {version}")
    event = seen.get(key_id)
    assert event is not None
    return event


@dataclass
class Manage:
    """The management API in-process: ``call`` answers what ManagementService.Call would."""

    deps: Deps
    pool: asyncpg.Pool

    async def call(
        self, caller: Caller, method: str, path: str, body: Any = None, query: str = ""
    ) -> tuple[int, dict[str, Any]]:
        raw = body if isinstance(body, bytes) else (b"" if body is None else orjson.dumps(body))
        status, answer = await dispatch(self.deps, caller, method, path, query, raw, "req_test")
        return status, orjson.loads(answer)

    async def ok(self, caller: Caller, method: str, path: str, body: Any = None, query: str = "") -> dict[str, Any]:
        status, answer = await self.call(caller, method, path, body, query)
        assert status in (200, 201), (status, answer)
        return answer


@pytest.fixture(scope="module")
async def manage(platform: Platform, billing_dsn: str) -> AsyncIterator[Manage]:
    pool = await asyncpg.create_pool(billing_dsn, min_size=1, max_size=5)
    assert pool is not None
    producer = EventProducer(client_settings(platform), client_id="billing-test")
    await producer.start()
    outbox = OutboxPublisher(pool, producer, interval=0.5)
    stop = asyncio.Event()
    loop = asyncio.create_task(outbox.run(stop))
    try:
        yield Manage(Deps(pool, outbox, platform.key_hash_secret, flush_timeout=5.0), pool)
    finally:
        stop.set()
        await loop
        await producer.stop()
        await pool.close()


async def dump(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every row of billing's tables as text, minus the publisher's bookkeeping (which a background
    pass may move at any moment without any request changing anything)."""
    out: dict[str, list[str]] = {}
    for table in ("accounts", "plans", "api_keys"):
        rows = await conn.fetch(f"SELECT (to_jsonb(t) - 'published_version')::text AS r FROM {table} t ORDER BY id")
        out[table] = [r["r"] for r in rows]
    return out


async def everything_as_text(conn: asyncpg.Connection) -> str:
    """Every column of every row of every table in the database, as one string (bytea shows as hex)."""
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    parts = [
        await conn.fetchval(f'SELECT coalesce(string_agg(x::text, \' \'), \'\') FROM "{t["table_name"]}" x')
        for t in tables
    ]
    return " ".join(parts)


def leaks(secret: str, text: str) -> bool:
    """Whether ``text`` holds the secret, its random part, or either as hex (a bytea column)."""
    forms = {secret, secret[3:], secret.encode().hex(), secret[3:].encode().hex()}
    return any(form in text for form in forms)
