"""catalog.v1's transactional outbox: publish every entity row whose state is committed but not yet on
Kafka (``state_version > published_version``, see migration 0002), so a Kafka outage delays a change
but never loses one, and versions only grow.

Two paths drive it (``services.common.outbox.OutboxLoop``): a management request ``flush``-es right
after its commit (edges and routers see the change within the 2 s of the promise), and ``run`` makes a
pass every ``interval`` seconds to catch whatever is left (Kafka was down, the process died between
commit and publish, a sync or seed ran in another process). A pass holds one transaction-scoped
advisory lock, so replicas and the CLI publish one at a time: an entity's records reach Kafka in version
order and compaction keeps the newest.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import structlog
from prometheus_client import Counter
from pydantic import ValidationError

from services.catalog.records import RECORDS, TABLES, Kind, published_deleted
from services.catalog.store import Conn
from services.common.events.catalog import CatalogEventV1, ModelEntry
from services.common.kafka.producer import EventProducer
from services.common.outbox import OutboxLoop, publish_all

log = structlog.get_logger(__name__)

LOCK_ID = 0x63617461  # "cata": the one publisher lock of the catalog database
PUBLISHED = Counter("tollgate_catalog_events_published_total", "catalog.v1 events published")
FAILED_PASSES = Counter("tollgate_catalog_outbox_failed_passes_total", "catalog outbox passes that failed")


def event_of(kind: Kind, row: asyncpg.Record) -> CatalogEventV1:
    record = RECORDS[kind].from_row(row)
    entity = record.entry()
    if isinstance(entity, ModelEntry):  # the one timestamp clients see: a model list's created date
        entity = entity.model_copy(update={"created_at": row["created_at"].astimezone(UTC)})
    updated = row["updated_at"] if "updated_at" in row else row["created_at"]
    return CatalogEventV1(
        version=row["state_version"], deleted=published_deleted(kind, row), entity=entity,
        updated_at=updated.astimezone(UTC) if isinstance(updated, datetime) else datetime.now(UTC),
    )


async def _publish(conn: Conn, producer: EventProducer, where: str, *args: object) -> int:
    """Publish the matching rows of every table (under the lock the caller holds) and mark them."""
    sent = 0
    for kind, table in TABLES.items():
        rows = await conn.fetch(f"SELECT * FROM {table} {where} ORDER BY state_version", *args)  # noqa: S608
        marks: list[tuple[str, int]] = []
        sends = []
        for row in rows:
            try:
                event = event_of(kind, row)
            except ValidationError as exc:  # a row breaking the schema: say so, never block the rest
                log.error("catalog_event_invalid", kind=kind, entity_id=row["id"], errors=exc.error_count())
                continue
            sends.append(producer.publish("catalog.v1", event.record_key, event))
            marks.append((row["id"], row["state_version"]))
        await publish_all(sends)
        if marks:
            await conn.execute(
                f"""UPDATE {table} t SET published_version = v.version
                    FROM unnest($1::text[], $2::bigint[]) AS v (id, version)
                    WHERE t.id = v.id AND t.published_version < v.version""",  # noqa: S608
                [m[0] for m in marks], [m[1] for m in marks],
            )
        sent += len(marks)
    PUBLISHED.inc(sent)
    return sent


async def publish_pending(conn: Conn, producer: EventProducer) -> int:
    """One pass: every unpublished change, oldest version first; returns how many events went out."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_ID)
        return await _publish(conn, producer, "WHERE state_version > published_version")


async def republish_all(conn: Conn, producer: EventProducer) -> int:
    """Every entity's current state, published or not (same versions again: harmless). For the seed,
    which must leave the whole catalog on the bus even when the topic lost data."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_ID)
        return await _publish(conn, producer, "")


class OutboxPublisher(OutboxLoop):
    """The one publisher task of a catalog process (see the module docstring): a pass is one
    ``publish_pending`` under the database-wide publisher lock."""

    def __init__(self, pool: asyncpg.Pool, producer: EventProducer, interval: float = 1.0) -> None:
        super().__init__(pool, producer, interval, FAILED_PASSES, name="catalog_outbox")

    async def drain(self) -> None:
        async with self._pool.acquire() as conn:
            await publish_pending(conn, self._producer)
