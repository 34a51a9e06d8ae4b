"""``last_used_at`` of each key, from the edges' requests.v1 events (consumer group ``billing.last-used``).

A pure processor reduces a batch to the latest admitted ``received_at`` per key; the writer applies
it in one statement per batch, only ever moving a key's timestamp forward, so redelivered or
out-of-order batches change nothing. It does not touch ``state_version``: when a key was last used is
shown to people, it is not part of the state an edge enforces, so it must not republish the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
from pydantic import ValidationError

from services.common.events.requests import RequestEventV1
from services.common.kafka.batch_consumer import DeadLetter, ProcessResult, Record

GROUP_ID = "billing.last-used"
LastUse = tuple[str, datetime]  # key id, latest admitted received_at in the batch

_UPDATE = """
UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, v.at)
FROM unnest($1::text[], $2::timestamptz[]) AS v (id, at)
WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < v.at)
"""


def process_requests(records: Sequence[Record]) -> ProcessResult[LastUse]:
    latest: dict[str, datetime] = {}
    dead: list[DeadLetter] = []
    for record in records:
        try:
            event = RequestEventV1.from_bytes(record.value or b"")
        except ValidationError as exc:
            dead.append(DeadLetter(record, f"invalid requests.v1 event: {exc.error_count()} error(s)"))
            continue
        if event.decision != "admitted" or event.key_id is None:
            continue
        if event.key_id not in latest or latest[event.key_id] < event.received_at:
            latest[event.key_id] = event.received_at
    return ProcessResult(rows=sorted(latest.items()), dead_letters=dead)


class LastUsedWriter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def write(self, rows: Sequence[LastUse]) -> None:
        if not rows:
            return
        async with self._pool.acquire() as conn:
            await conn.execute(_UPDATE, [k for k, _ in rows], [t for _, t in rows])
