"""keys.v1's transactional outbox: publish every key row whose state is committed but not yet on Kafka.

A change commits ``state_version = nextval('key_state_seq')`` on every key it affects (migration 0002),
so ``state_version > published_version`` *is* the outbox: nothing committed can be missed, whether the
process crashed or Kafka was down at commit time. The publisher sends each such row's current state
with ``version = state_version`` and then raises ``published_version`` (only upwards).

Two paths drive it (``services.common.outbox.OutboxLoop``): a management request ``flush``-es right after
its commit (so edges see the change well within the 2 s of promise 5), and ``run`` makes a pass every
``interval`` seconds to catch whatever is left. Both go through the one publisher task of this process,
and replicas exclude each other per key with a transaction-scoped advisory lock held from reading a row
to marking it: a key's records therefore reach Kafka in version order, so compaction always keeps the
newest one.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import structlog
from prometheus_client import Counter
from pydantic import ValidationError

from services.billing.db import Conn
from services.billing.key_events import SELECT_KEY_STATE, key_event
from services.common.kafka.producer import EventProducer
from services.common.outbox import OutboxLoop, publish_all

log = structlog.get_logger(__name__)

LOCK_CLASS = 0x6B657973  # "keys": namespace of the per-key advisory locks (two-int form)
PUBLISHED = Counter("tollgate_billing_key_events_published_total", "keys.v1 events published")
FAILED_PASSES = Counter("tollgate_billing_outbox_failed_passes_total", "outbox passes that failed")

_CLAIM = """
WITH candidates AS MATERIALIZED (
    SELECT id FROM api_keys WHERE state_version > published_version ORDER BY state_version LIMIT $1
)
SELECT id FROM candidates WHERE pg_try_advisory_xact_lock($2, hashtext(id))
"""
# SKIP LOCKED: a row locked by a request is being changed, so it gets a newer state_version and stays
# in the outbox anyway; the publisher never waits on a request's row lock, so it cannot deadlock with one
_MARK = """
UPDATE api_keys k SET published_version = v.version
FROM unnest($1::text[], $2::bigint[]) AS v (id, version)
WHERE k.id = v.id AND k.published_version < v.version
  AND k.id IN (SELECT id FROM api_keys WHERE id = ANY($1::text[]) FOR UPDATE SKIP LOCKED)
"""


async def _publish_rows(conn: Conn, producer: EventProducer, where: str, ids: list[str]) -> int:
    """Publish the rows (already locked by this transaction) and mark them; return how many."""
    rows = await conn.fetch(SELECT_KEY_STATE + where, ids)
    sends, versions = [], []
    for row in rows:
        try:
            event = key_event(row)
        except ValidationError as exc:  # a row breaking the event schema: say so, never block the rest
            log.error("key_event_invalid", key_id=row["id"], errors=exc.error_count())
            continue
        sends.append(producer.publish("keys.v1", row["id"], event))
        versions.append((row["id"], row["state_version"]))
    await publish_all(sends)
    if versions:
        await conn.execute(_MARK, [k for k, _ in versions], [v for _, v in versions])
    PUBLISHED.inc(len(versions))
    return len(versions)


async def publish_pending(
    conn: Conn, producer: EventProducer, limit: int = 500
) -> tuple[int, bool]:
    """One batch: claim up to ``limit`` unpublished keys no other publisher holds, publish, mark.

    Returns (events published, whether another batch may be waiting).
    """
    async with conn.transaction():
        claimed = [r["id"] for r in await conn.fetch(_CLAIM, limit, LOCK_CLASS)]
        if not claimed:
            return 0, False
        # re-read under the locks: another replica may have published some of them meanwhile
        published = await _publish_rows(
            conn, producer, "WHERE k.id = ANY($1::text[]) AND k.state_version > k.published_version", claimed
        )
    # a full batch means more may wait, unless nothing in it could be published (don't spin on it)
    return published, len(claimed) == limit and published > 0


async def republish(conn: Conn, producer: EventProducer, key_ids: Sequence[str]) -> int:
    """Publish these keys' current state even if already published (same version again: harmless).

    For ``bootstrap``, which must leave the demo key on the bus even when the bus was emptied. Waits
    for each key's lock (in id order, so two callers cannot deadlock).
    """
    ids = sorted(set(key_ids))
    async with conn.transaction():
        for key_id in ids:
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, key_id)
        return await _publish_rows(conn, producer, "WHERE k.id = ANY($1::text[])", ids)


class OutboxPublisher(OutboxLoop):
    """The one publisher task of a billing process (see the module docstring): batches until none is
    left, each in its own transaction."""

    def __init__(
        self, pool: asyncpg.Pool, producer: EventProducer, interval: float = 1.0, batch: int = 500
    ) -> None:
        super().__init__(pool, producer, interval, FAILED_PASSES, name="outbox")
        self._batch = batch

    async def drain(self) -> None:
        more = True
        while more:
            async with self._pool.acquire() as conn:
                _, more = await publish_pending(conn, self._producer, self._batch)
