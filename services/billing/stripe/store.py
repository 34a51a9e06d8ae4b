"""The SQL of billing's Stripe tables (migration 0004); callers own the transaction."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.billing.db import Conn

SUBSCRIPTION_COLUMNS = (
    "id, account_id, plan_id, stripe_plan_id, status, current_period_end, cancel_at_period_end,"
    " created_at, synced_at"
)

_GET_PAYMENT_INTENT = (
    "SELECT id, account_id, amount_cents, status, credited FROM stripe_payment_intents WHERE id = $1"
)


async def customer_of(conn: Conn, account_id: str) -> str | None:
    value = await conn.fetchval("SELECT stripe_customer_id FROM accounts WHERE id = $1", account_id)
    return None if value is None else str(value)


async def set_customer(conn: Conn, account_id: str, customer_id: str) -> None:
    await conn.execute("UPDATE accounts SET stripe_customer_id = $2 WHERE id = $1", account_id, customer_id)


async def account_of_customer(conn: Conn, customer_id: str) -> str | None:
    value = await conn.fetchval("SELECT id FROM accounts WHERE stripe_customer_id = $1", customer_id)
    return None if value is None else str(value)


async def customers(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, stripe_customer_id FROM accounts WHERE stripe_customer_id IS NOT NULL ORDER BY id"
    )


# --- payment intents --------------------------------------------------------------------------

async def insert_payment_intent(
    conn: Conn, pi_id: str, account_id: str, amount_cents: int, currency: str, status: str, request_id: str
) -> None:
    await conn.execute(
        "INSERT INTO stripe_payment_intents (id, account_id, amount_cents, currency, status, request_id)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        pi_id, account_id, amount_cents, currency, status, request_id,
    )


async def get_payment_intent(conn: Conn, pi_id: str, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(_GET_PAYMENT_INTENT + (" FOR UPDATE" if lock else ""), pi_id)


async def mark_payment_intent(conn: Conn, pi_id: str, status: str, credited: bool) -> None:
    await conn.execute(
        "UPDATE stripe_payment_intents SET status = $2, credited = credited OR $3, updated_at = now()"
        " WHERE id = $1", pi_id, status, credited,
    )


async def open_payment_intents(conn: Conn, lookback_hours: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT id FROM stripe_payment_intents WHERE NOT credited AND status NOT IN ('canceled')"
        " AND created_at > now() - make_interval(hours => $1) ORDER BY created_at", lookback_hours,
    )
    return [r["id"] for r in rows]


# --- subscriptions ----------------------------------------------------------------------------

async def get_subscription(conn: Conn, sub_id: str, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM stripe_subscriptions WHERE id = $1"  # noqa: S608
        + (" FOR UPDATE" if lock else ""), sub_id,
    )


async def subscriptions_of(conn: Conn, account_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM stripe_subscriptions WHERE account_id = $1"  # noqa: S608
        " ORDER BY created_at DESC, id DESC", account_id,
    )


async def upsert_subscription(
    conn: Conn, *, sub_id: str, account_id: str, plan_id: str | None, stripe_plan_id: str | None,
    status: str, current_period_end: datetime | None, cancel_at_period_end: bool,
) -> None:
    await conn.execute(
        "INSERT INTO stripe_subscriptions (id, account_id, plan_id, stripe_plan_id, status,"
        " current_period_end, cancel_at_period_end) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status,"
        " plan_id = coalesce(EXCLUDED.plan_id, stripe_subscriptions.plan_id),"
        " stripe_plan_id = coalesce(EXCLUDED.stripe_plan_id, stripe_subscriptions.stripe_plan_id),"
        " current_period_end = EXCLUDED.current_period_end,"
        " cancel_at_period_end = EXCLUDED.cancel_at_period_end, synced_at = now()",
        sub_id, account_id, plan_id, stripe_plan_id, status, current_period_end, cancel_at_period_end,
    )


async def plan_of_stripe_plan(conn: Conn, stripe_plan_id: str) -> str | None:
    value = await conn.fetchval(
        "SELECT id FROM plans WHERE stripe_plan_id = $1 ORDER BY id LIMIT 1", stripe_plan_id
    )
    return None if value is None else str(value)


async def link_plan(conn: Conn, plan_id: str, stripe_plan_id: str | None) -> None:
    await conn.execute(
        "UPDATE plans SET stripe_plan_id = $2, updated_at = now() WHERE id = $1", plan_id, stripe_plan_id
    )


# --- webhook event log ------------------------------------------------------------------------

async def event_processed(conn: Conn, event_id: str) -> bool:
    value = await conn.fetchval("SELECT processed_at IS NOT NULL FROM stripe_webhook_events WHERE id = $1",
                                event_id)
    return bool(value)


async def claim_event(conn: Conn, event_id: str, event_type: str) -> bool:
    """Record the event and lock its row; False when it was already processed (a redelivery)."""
    await conn.execute(
        "INSERT INTO stripe_webhook_events (id, type) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        event_id, event_type,
    )
    processed = await conn.fetchval(
        "SELECT processed_at IS NOT NULL FROM stripe_webhook_events WHERE id = $1 FOR UPDATE", event_id
    )
    return not processed


async def finish_event(conn: Conn, event_id: str, outcome: str) -> None:
    await conn.execute(
        "UPDATE stripe_webhook_events SET processed_at = now(), outcome = $2 WHERE id = $1", event_id, outcome
    )


async def record_failure(conn: Conn, event_id: str, event_type: str, outcome: str) -> None:
    """An event whose processing failed: logged, never marked processed, so Stripe's retry runs it."""
    await conn.execute(
        "INSERT INTO stripe_webhook_events (id, type, outcome) VALUES ($1, $2, $3)"
        " ON CONFLICT (id) DO UPDATE SET outcome = EXCLUDED.outcome"
        " WHERE stripe_webhook_events.processed_at IS NULL",
        event_id, event_type, outcome,
    )
