"""Balances and the credit ledger over the management API: read a balance, list the ledger, and let
the operator grant credit or post an adjustment.

Crediting is the operator's alone (a management key can read its tree's balances, never add to them);
customers add money with a Stripe top-up, which the ledger records from the verified webhook. Every
post carries an idempotency key (the client's, or a fresh one), so a retried call never credits twice.
After a commit the wallet mirror is kicked, so the edges' admission sees new credit at once.
"""

from __future__ import annotations

import secrets

import asyncpg
import structlog
from redis.exceptions import RedisError

from services.billing.ledger import Entry, IdempotencyConflict, InsufficientBalance, post
from services.billing.manage import store
from services.billing.manage.context import Deps
from services.billing.manage.ledger_wire import (
    BalanceView,
    CreditCreate,
    LedgerQuery,
    TransactionList,
    TransactionView,
)
from services.billing.manage.tenancy import admin_only, require_account
from services.common.errors import Conflict
from services.common.manage.context import Call, Reply
from services.common.money import format_micros

log = structlog.get_logger(__name__)

_TRANSACTION = """
SELECT id, account_id, seq, kind, amount_micros, balance_after_micros, reason, reference, expires_at,
       occurred_at, created_at
FROM ledger_transactions
"""


def transaction_view(row: asyncpg.Record) -> TransactionView:
    return TransactionView(
        id=row["id"], account_id=row["account_id"], seq=row["seq"], kind=row["kind"],
        amount=format_micros(row["amount_micros"]), balance_after=format_micros(row["balance_after_micros"]),
        reason=row["reason"], reference=row["reference"], expires_at=row["expires_at"],
        occurred_at=row["occurred_at"], created_at=row["created_at"],
    )


async def get_balance(deps: Deps, call: Call) -> Reply:
    account_id = call.params["id"]
    async with deps.pool.acquire() as conn:
        found = await store.get_account(conn, account_id)
        account = await require_account(conn, call.caller, found, account_id)
        row = await conn.fetchrow(
            "SELECT currency, balance_micros, version, updated_at FROM ledger_balances WHERE account_id = $1",
            account_id,
        )
    balance = row["balance_micros"] if row else 0
    held: int | None = None
    if account["billing"] == "prepaid" and deps.wallets is not None:
        try:  # the edges' own running total of the holds: one read, however many are in flight
            wallet = await deps.wallets.read(account_id)
            held = wallet[2] if wallet is not None else 0
        except RedisError:
            held = None
    return Reply(200, BalanceView(
        account_id=account_id, billing=account["billing"], balance=format_micros(balance),
        currency=(row["currency"] if row else account["currency"]).strip(),
        held=None if held is None else format_micros(held),
        available=None if held is None else format_micros(balance - held),
        seq=row["version"] if row else 0, updated_at=row["updated_at"] if row else None,
    ))


async def post_credit(deps: Deps, call: Call) -> Reply:
    admin_only(call.caller, "add or adjust credit (customers top up through Stripe)")
    body, account_id = call.body_as(CreditCreate), call.params["id"]
    key = f"credit:{account_id}:{body.idempotency_key or secrets.token_hex(12)}"
    async with deps.pool.acquire() as conn:
        await require_account(conn, call.caller, await store.get_account(conn, account_id), account_id)
        try:
            async with conn.transaction():
                posted = await post(conn, Entry(
                    account_id=account_id, kind=body.kind, amount_micros=body.amount, idempotency_key=key,
                    reason=body.reason, expires_at=body.expires_at,
                ))
        except IdempotencyConflict:
            raise Conflict(
                "This idempotency_key was already used for a different credit.",
                param="idempotency_key", code="idempotency_key_reused",
            ) from None
        except InsufficientBalance as exc:
            raise Conflict(
                f"The balance is ${format_micros(exc.balance_micros)}: an adjustment of "
                f"-${format_micros(exc.amount_micros)} would take it below zero.",
                param="amount", code="insufficient_balance",
            ) from None
        row = await conn.fetchrow(_TRANSACTION + "WHERE id = $1", posted.transaction_id)
    assert row is not None
    if deps.mirror is not None:
        deps.mirror.kick()
    if posted.created:
        log.info("credit_posted", account_id=account_id, kind=body.kind, amount_micros=body.amount,
                 transaction_id=posted.transaction_id, by=call.caller.audit, request_id=call.request_id)
    return Reply(201 if posted.created else 200, transaction_view(row))


async def list_ledger(deps: Deps, call: Call) -> Reply:
    query, account_id = call.query_as(LedgerQuery), call.params["id"]
    async with deps.pool.acquire() as conn:
        await require_account(conn, call.caller, await store.get_account(conn, account_id), account_id)
        rows = await conn.fetch(
            _TRANSACTION + "WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            account_id, query.after or 0, query.limit + 1,
        )
    return Reply(200, TransactionList(
        data=[transaction_view(r) for r in rows[:query.limit]], has_more=len(rows) > query.limit
    ))
