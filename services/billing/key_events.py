"""What billing publishes on keys.v1: the full current state of a key, joined with its plan and
account, so an edge needs nothing else to authenticate and admit.

``version`` is the key row's ``state_version``: a value of one global sequence, set in the same
transaction as any change that alters this event (see migration 0002 and ``outbox.py``), so a later
change always carries a larger version than an earlier one, whichever row it touched.

``account_status`` is effective: a key is suspended when its account *or any ancestor* is suspended,
so suspending a reseller stops its customers' keys too. A billing hold (an unpaid or canceled Stripe
subscription, ``accounts.billing_hold``) suspends exactly like ``status = 'suspended'`` does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from services.common.events.keys import KeyEventV1, Limits

# Every column the event needs, for the key rows named by the caller's WHERE clause.
SELECT_KEY_STATE = """
SELECT k.id, k.account_id, k.plan_id, k.name, encode(k.key_hash, 'hex') AS key_hash, k.prefix, k.status,
       k.kind, k.overrides, k.expires_at, k.state_version, k.published_version,
       (WITH RECURSIVE up (id, parent_id, status, hold) AS (
            SELECT a0.id, a0.parent_id, a0.status, a0.billing_hold FROM accounts a0 WHERE a0.id = k.account_id
            UNION ALL
            SELECT a1.id, a1.parent_id, a1.status, a1.billing_hold
            FROM accounts a1 JOIN up ON a1.id = up.parent_id)
        SELECT CASE WHEN bool_or(up.status = 'suspended' OR up.hold IS NOT NULL) THEN 'suspended'
                    ELSE 'active' END FROM up
       ) AS account_status,
       a.billing,
       p.requests_per_minute, p.tokens_per_minute, p.max_concurrency, p.budget_micros,
       p.budget_window_seconds, p.allowed_models, p.expires_at AS plan_expires_at,
       greatest(k.updated_at, p.updated_at, a.updated_at) AS updated_at
FROM api_keys k JOIN plans p ON p.id = k.plan_id JOIN accounts a ON a.id = k.account_id
"""
LIMIT_COLUMNS = ("requests_per_minute", "tokens_per_minute", "max_concurrency", "budget_micros",
                 "budget_window_seconds", "allowed_models")


def overrides_of(value: object) -> dict[str, Any]:
    """The per-key overrides column (jsonb, returned by asyncpg as text) as a dict."""
    if isinstance(value, str):
        loaded = orjson.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return dict(value) if isinstance(value, dict) else {}


def effective_limits(plan: asyncpg.Record | dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The plan's limits with the key's overrides applied (a present override wins, even ``None``)."""
    limits = {name: overrides[name] if name in overrides else plan[name] for name in LIMIT_COLUMNS}
    if limits["allowed_models"] is not None:
        limits["allowed_models"] = tuple(limits["allowed_models"])
    return limits


def key_event(row: asyncpg.Record) -> KeyEventV1:
    return KeyEventV1(
        key_id=row["id"], version=row["state_version"], account_id=row["account_id"],
        plan_id=row["plan_id"], key_hash=row["key_hash"], prefix=row["prefix"], name=row["name"],
        status=row["status"], kind=row["kind"], account_status=row["account_status"],
        billing=row["billing"], limits=Limits(**effective_limits(row, overrides_of(row["overrides"]))),
        expires_at=row["expires_at"], plan_expires_at=row["plan_expires_at"],
        updated_at=row["updated_at"] or datetime.now(UTC),
    )
