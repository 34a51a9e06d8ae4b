"""Withdrawing what is left of expired grants: one 'expiry' entry per grant, idempotent by grant.

A grant's remaining credit is tracked in ``ledger_grants`` (charges draw on the soonest-expiring grant
first). At expiry the remainder is withdrawn, but never more than the balance holds: if the customer
already overdrew (a charge may), the grant's credit is gone already and there is nothing to take back.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import structlog

from services.billing.ledger.entries import Entry, post

log = structlog.get_logger(__name__)

_DUE = """
SELECT transaction_id, account_id FROM ledger_grants
WHERE NOT expired AND expires_at <= $1 ORDER BY expires_at LIMIT $2
"""


async def expire_grants(pool: asyncpg.Pool, now: datetime, batch: int = 500) -> int:
    """Withdraw the remainder of every grant expired at ``now``; returns how many grants it closed."""
    async with pool.acquire() as conn:
        due = await conn.fetch(_DUE, now, batch)
    closed = 0
    for grant in due:
        async with pool.acquire() as conn, conn.transaction():
            await conn.fetchrow(  # the account's lock first, as post() takes it: no lock-order inversion
                "SELECT 1 FROM ledger_balances WHERE account_id = $1 FOR UPDATE", grant["account_id"]
            )
            row = await conn.fetchrow(
                "SELECT remaining_micros, expired FROM ledger_grants WHERE transaction_id = $1 FOR UPDATE",
                grant["transaction_id"],
            )
            if row is None or row["expired"]:
                continue
            balance: int = await conn.fetchval(
                "SELECT balance_micros FROM ledger_balances WHERE account_id = $1", grant["account_id"]
            )
            withdraw = min(row["remaining_micros"], max(balance, 0))
            if withdraw > 0:
                await post(conn, Entry(
                    account_id=grant["account_id"], kind="expiry", amount_micros=-withdraw,
                    idempotency_key=f"expiry:{grant['transaction_id']}",
                    reason="unused credit of an expired grant", reference=str(grant["transaction_id"]),
                    occurred_at=now,
                ))
            await conn.execute(
                "UPDATE ledger_grants SET expired = true, remaining_micros = 0 WHERE transaction_id = $1",
                grant["transaction_id"],
            )
            closed += 1
            log.info("grant_expired", account_id=grant["account_id"], grant=grant["transaction_id"],
                     withdrawn_micros=withdraw)
    return closed
