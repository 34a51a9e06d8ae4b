"""Fixtures of the catalog's tests: a catalog database of their own (migrated and seeded like
``make run`` does), catalog.v1 under a topic prefix of their own, and what edges and routers see of it.

``catalog`` runs the management API in this process exactly as the service wires it (pool, producer,
the outbox publisher loop) against the session's real PostgreSQL and Kafka; ``seen`` follows catalog.v1
with the services' own snapshot class and feeds the edge's ``CatalogView`` and the router's
``RoutingTable`` from it, so an assertion on them is an assertion on what edges and routers see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from infra.stack.platform import Platform
from services.catalog.manage.context import Deps
from services.catalog.manage.dispatch import dispatch
from services.catalog.outbox import OutboxPublisher
from services.catalog.seed import SEED_FILE, load_seed, seed
from services.catalog.sync.runner import SyncConfig
from services.catalog.sync.sources import SyncSource
from services.common.events.catalog import CatalogEventV1
from services.common.kafka.producer import EventProducer
from services.common.kafka.snapshot import CompactedSnapshot
from services.common.manage.context import Caller
from services.common.pg_migrate import migrate
from services.edge.catalog_view import CatalogView
from services.router.routing import RoutingTable
from tests.conftest import unique
from tests.kafka_helpers import ClientSettings, fresh_topics

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "catalog" / "migrations"
ADMIN = Caller(account_id=None)
ACCOUNT = Caller(account_id="acct_reader", key_id="key_reader")
TRITON = {"TOLLGATE_TRITON_URL": "127.0.0.1:8001"}
MAX_MICROS = 1_000_000_000  # the default bound: 1000 USD per 1M tokens


async def new_database(platform: Platform, name: str = "catalog") -> str:
    dsn = platform.postgres.dsn(unique(name).lower())
    await migrate(dsn, MIGRATIONS, create_database=True)
    return dsn


@dataclass
class Seen:
    """catalog.v1 as every edge and router holds it."""

    snapshot: CompactedSnapshot[CatalogEventV1]
    view: CatalogView
    routing: RoutingTable

    async def until(self, check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> float:
        """Wait until ``check()`` holds; return how long it took."""
        started = time.monotonic()
        while not check():
            assert time.monotonic() - started < timeout, f"not seen within {timeout}s: {what}"
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    def version(self, key: str) -> int:
        event = self.snapshot.get(key)
        return -1 if event is None else event.version


@dataclass
class Catalog:
    """The management API in-process: ``call`` answers what ManagementService.Call would."""

    deps: Deps
    pool: asyncpg.Pool
    dsn: str
    settings: ClientSettings
    seen: Seen

    async def call(self, caller: Caller, method: str, path: str, body: Any = None,
                   query: str = "") -> tuple[int, dict[str, Any]]:
        raw = body if isinstance(body, bytes) else (b"" if body is None else orjson.dumps(body))
        status, answer = await dispatch(self.deps, caller, method, path, query, raw, "req_test")
        return status, orjson.loads(answer)

    async def ok(self, caller: Caller, method: str, path: str, body: Any = None, query: str = "") -> dict[str, Any]:
        status, answer = await self.call(caller, method, path, body, query)
        assert status in (200, 201), (status, answer)
        return answer

    def with_sources(self, *sources: SyncSource, **config: Any) -> Catalog:
        """The same catalog with these sync sources declared (and sync settings changed)."""
        sync_config = replace(self.deps.sync_config, **config)
        deps = replace(self.deps, sync_sources={s.name: s for s in sources}, sync_config=sync_config)
        return replace(self, deps=deps)


async def dump(conn: asyncpg.Connection, *, with_runs: bool = False) -> dict[str, list[str]]:
    """Every row of the catalog's tables as text, minus the publisher's bookkeeping (a background pass
    may move it at any moment without any request changing anything)."""
    tables = ["models", "deployments", "prices", "aliases", "catalog_audit", "pending_changes"]
    out: dict[str, list[str]] = {}
    for table in tables + (["sync_runs"] if with_runs else []):
        rows = await conn.fetch(f"SELECT (to_jsonb(t) - 'published_version')::text AS r FROM {table} t ORDER BY 1")
        out[table] = [r["r"] for r in rows]
    return out


@pytest.fixture(scope="module")
async def catalog(platform: Platform) -> AsyncIterator[Catalog]:
    dsn = await new_database(platform)
    settings = await fresh_topics(platform.bus.bootstrap)
    producer = EventProducer(settings, client_id="catalog-test")
    await producer.start()
    await seed(dsn, producer, load_seed(SEED_FILE, TRITON))
    view, routing = CatalogView(), RoutingTable()

    def both(key: str, event: CatalogEventV1 | None) -> None:
        view.apply(key, event)
        routing.apply(key, event)

    seen = Seen(CompactedSnapshot(settings, "catalog.v1", CatalogEventV1.from_bytes, on_change=both), view, routing)
    await seen.snapshot.start()
    await asyncio.wait_for(seen.snapshot.ready.wait(), 30)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=5)
    assert pool is not None
    outbox = OutboxPublisher(pool, producer, interval=0.5)
    stop = asyncio.Event()
    loop = asyncio.create_task(outbox.run(stop))
    config = SyncConfig(max_bytes=1024 * 1024, timeout=5.0, factor=Decimal(2), policy="ignore",
                        max_micros=MAX_MICROS)
    deps = Deps(pool=pool, outbox=outbox, max_price_micros=MAX_MICROS, sync_config=config, flush_timeout=5.0)
    try:
        yield Catalog(deps, pool, dsn, settings, seen)
    finally:
        stop.set()
        await loop
        await seen.snapshot.stop()
        await producer.stop()
        await pool.close()

