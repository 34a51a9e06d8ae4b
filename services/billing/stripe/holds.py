"""Billing holds: an account whose subscription is canceled or unpaid has its keys suspended.

The hold is a column of its own (``accounts.billing_hold``), not ``status``, so an operator's
suspension and Stripe's never undo each other. keys.v1 reports a key's account as suspended when the
account or an ancestor has a hold (``key_events.SELECT_KEY_STATE``); setting or clearing one gives
every live key below a new ``state_version`` in the same transaction (the outbox), and the caller
flushes after the commit, so every edge refuses or restores the keys within the 2 s of promise 5.
"""

from __future__ import annotations

from services.billing.db import Conn
from services.billing.manage.store import touch_keys_below

# Only holds that Stripe set are Stripe's to clear.
PREFIX = "subscription_"


async def set_hold(conn: Conn, account_id: str, hold: str | None) -> tuple[bool, int]:
    """Put or lift ``account_id``'s Stripe hold: (whether it changed, how many keys were republished).

    A hold that is not ours (another reason, set by someone else) is left alone.
    """
    changed = await conn.fetchval(
        "UPDATE accounts SET billing_hold = $2, version = version + 1, updated_at = now()"
        " WHERE id = $1 AND billing_hold IS DISTINCT FROM $2"
        " AND (billing_hold IS NULL OR billing_hold LIKE 'subscription\\_%') RETURNING id",
        account_id, hold,
    )
    if changed is None:
        return False, 0
    return True, await touch_keys_below(conn, account_id)


async def hold_of(conn: Conn, account_id: str) -> str | None:
    value = await conn.fetchval("SELECT billing_hold FROM accounts WHERE id = $1", account_id)
    return None if value is None else str(value)
