"""What billing publishes on keys.v1: the full current state of a key, joined with its plan and
account, so an edge needs nothing else to authenticate and admit. ``version`` is the sum of the three
rows' versions: each only ever increases, so any change to any of them yields a larger version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from services.common.events.keys import KeyEventV1, Limits
from services.common.kafka.producer import EventProducer

_JOIN = """
SELECT k.id, k.account_id, k.plan_id, k.name, encode(k.key_hash, 'hex') AS key_hash, k.prefix, k.status,
       k.overrides, k.expires_at, k.version + p.version + a.version AS version,
       a.status AS account_status, a.billing,
       p.requests_per_minute, p.tokens_per_minute, p.max_concurrency, p.budget_micros,
       p.budget_window_seconds, p.allowed_models,
       greatest(k.updated_at, p.updated_at, a.updated_at) AS updated_at
FROM api_keys k JOIN plans p ON p.id = k.plan_id JOIN accounts a ON a.id = k.account_id
"""
_LIMITS = ("requests_per_minute", "tokens_per_minute", "max_concurrency", "budget_micros",
           "budget_window_seconds", "allowed_models")


def key_event(row: asyncpg.Record) -> KeyEventV1:
    overrides: dict[str, Any] = orjson.loads(row["overrides"]) if isinstance(row["overrides"], str) else {}
    limits = {name: overrides.get(name, row[name]) for name in _LIMITS}
    if limits["allowed_models"] is not None:
        limits["allowed_models"] = tuple(limits["allowed_models"])
    return KeyEventV1(
        key_id=row["id"], version=row["version"], account_id=row["account_id"], plan_id=row["plan_id"],
        key_hash=row["key_hash"], prefix=row["prefix"], name=row["name"], status=row["status"],
        account_status=row["account_status"], billing=row["billing"], limits=Limits(**limits),
        expires_at=row["expires_at"], updated_at=row["updated_at"] or datetime.now(UTC),
    )


async def publish_keys(
    conn: asyncpg.Connection, producer: EventProducer, where: str = "", *args: object
) -> int:
    """Publish the current state of the keys matching ``where`` (a trusted SQL fragment)."""
    rows = await conn.fetch(_JOIN + where, *args)
    for row in rows:
        await producer.publish("keys.v1", row["id"], key_event(row))
    return len(rows)
