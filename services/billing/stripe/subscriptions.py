"""Stripe's subscription state → our ``stripe_subscriptions`` row and the account's billing hold.

Callers pass the subscription *as Stripe holds it now* (re-retrieved, never the copy inside an event),
so events arriving late, twice or out of order all end in Stripe's real state. ``canceled`` is
terminal: a row that is canceled stays canceled whatever an older copy says.

The account's hold follows all its subscriptions: any subscription in good standing (active,
trialing; past_due too unless ``BILLING_STRIPE_PAST_DUE_HOLDS``) lifts the hold — so a new paid
subscription restores a customer whose old one expired — otherwise the newest bad one sets it.
A subscription still ``incomplete`` (its first payment pending) neither sets nor lifts a hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from services.billing.db import Conn
from services.billing.stripe import store
from services.billing.stripe.holds import set_hold

log = structlog.get_logger(__name__)
TERMINAL = frozenset({"canceled", "incomplete_expired"})
HOLD_REASONS = {
    "canceled": "subscription_canceled",
    "unpaid": "subscription_unpaid",
    "incomplete_expired": "subscription_incomplete_expired",
    "past_due": "subscription_past_due",
}


@dataclass(frozen=True)
class Applied:
    outcome: str  # applied | unchanged | unknown_customer
    account_id: str | None = None
    status: str | None = None
    hold: str | None = None
    hold_changed: bool = False
    keys_touched: int = 0


def good_standing(status: str, past_due_holds: bool) -> bool:
    return status in ("active", "trialing") or (status == "past_due" and not past_due_holds)


def hold_for(statuses: Sequence[str], past_due_holds: bool) -> str | None:
    """The account's hold from its subscriptions' statuses (newest first)."""
    if any(good_standing(s, past_due_holds) for s in statuses):
        return None
    for status in statuses:
        if status in HOLD_REASONS:
            return HOLD_REASONS[status]
    return None


_ONTO_PLAN = """
UPDATE api_keys SET plan_id = $2, version = version + 1, state_version = nextval('key_state_seq'),
                    updated_at = now()
WHERE account_id = $1 AND kind = 'inference' AND status <> 'revoked' AND plan_id <> $2
"""


async def _keys_onto_plan(conn: Conn, account_id: str, plan_id: str) -> int:
    """A subscription in good standing puts the account's inference keys on its plan, so what the
    customer pays for is what admission enforces (an upgrade or downgrade in Stripe moves them too).
    Keys keep their own overrides; the keys.v1 outbox republishes them (the caller flushes)."""
    result = await conn.execute(_ONTO_PLAN, account_id, plan_id)
    moved = int(result.split()[-1])
    if moved:
        log.info("subscription_keys_moved", account_id=account_id, plan_id=plan_id, keys=moved)
    return moved


def _when(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


def _stripe_plan(sub: dict[str, Any]) -> str | None:
    items = (sub.get("items") or {}).get("data") or []
    plan = (items[0].get("plan") if items else None) or sub.get("plan")
    return None if not plan else str(plan["id"] if isinstance(plan, dict) else plan)


async def apply_subscription(conn: Conn, sub: dict[str, Any], past_due_holds: bool) -> Applied:
    """Apply ``sub`` (Stripe's current object) in the caller's transaction; flush the outbox after."""
    sub_id, status = str(sub["id"]), str(sub["status"])
    row = await store.get_subscription(conn, sub_id, lock=True)
    account_id = str(row["account_id"]) if row is not None else None
    if account_id is None:
        account_id = await store.account_of_customer(conn, str(sub.get("customer") or ""))
    if account_id is None:
        log.info("subscription_unknown_customer", subscription=sub_id)
        return Applied("unknown_customer")
    if row is not None and row["status"] in TERMINAL and status not in TERMINAL:
        status = str(row["status"])  # terminal: an older copy never revives it
    stripe_plan_id = _stripe_plan(sub)
    plan_id = (sub.get("metadata") or {}).get("plan_id") or (
        await store.plan_of_stripe_plan(conn, stripe_plan_id) if stripe_plan_id else None
    )
    period_end, cancel_at_end = _when(sub.get("current_period_end")), bool(sub.get("cancel_at_period_end"))
    same = row is not None and (row["status"], row["current_period_end"], row["cancel_at_period_end"]) == (
        status, period_end, cancel_at_end)
    await store.upsert_subscription(
        conn, sub_id=sub_id, account_id=account_id, plan_id=plan_id, stripe_plan_id=stripe_plan_id,
        status=status, current_period_end=period_end, cancel_at_period_end=cancel_at_end,
    )
    moved = 0
    if plan_id is not None and good_standing(status, past_due_holds):
        moved = await _keys_onto_plan(conn, account_id, plan_id)
    statuses = [r["status"] for r in await store.subscriptions_of(conn, account_id)]
    hold = hold_for(statuses, past_due_holds)
    hold_changed, touched = await set_hold(conn, account_id, hold)
    touched += moved
    if not same or hold_changed:
        log.info("subscription_applied", subscription=sub_id, account_id=account_id, status=status,
                 hold=hold, hold_changed=hold_changed, keys_republished=touched)
    return Applied("unchanged" if same and not hold_changed else "applied", account_id, status, hold,
                   hold_changed, touched)
