"""Posting to the credit ledger: one function, ``post``, that every money movement goes through.

Why one function: the invariants live here and nowhere else — the account's balance row is locked
first (serialising the account's transactions and numbering them), the idempotency key is checked
under that lock (so a redelivered webhook, a replayed usage event or a retried API call posts once),
the two postings always sum to zero, and the running balance moves in the same transaction as the
entries. Callers open the database transaction; ``post`` never commits on its own, so a caller can
record its own state (a webhook log row, a payment intent's ``credited`` flag) atomically with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from services.billing.db import Conn

Kind = Literal["topup", "grant", "charge", "refund", "adjustment", "expiry"]

# The platform book on the other side of each kind of entry (the customer's wallet is always one side).
COUNTER_BOOK: dict[str, str] = {
    "topup": "stripe", "refund": "stripe", "charge": "revenue",
    "grant": "grants", "expiry": "grants", "adjustment": "adjustments",
}
# Entries the operator or a payment initiates may not overdraw the wallet; a charge may, because the
# service was already delivered (admission reserves the worst case, so in practice it never does).
MAY_OVERDRAW: frozenset[str] = frozenset({"charge"})


def wallet_book(account_id: str) -> str:
    return f"wallet:{account_id}"


class IdempotencyConflict(Exception):
    """The idempotency key was already used for a different entry (another account, kind or amount)."""


class InsufficientBalance(Exception):
    """A debit the operator asked for would take the balance below zero."""

    def __init__(self, balance_micros: int, amount_micros: int) -> None:
        super().__init__(f"balance {balance_micros} cannot cover {amount_micros}")
        self.balance_micros = balance_micros
        self.amount_micros = amount_micros


@dataclass(frozen=True)
class Entry:
    account_id: str
    kind: Kind
    amount_micros: int  # signed effect on the customer's balance: top-up +, charge −
    idempotency_key: str
    reason: str = ""
    reference: str | None = None
    expires_at: datetime | None = None  # grants only
    occurred_at: datetime | None = None  # default: now


@dataclass(frozen=True)
class Posted:
    transaction_id: int
    account_id: str
    seq: int
    amount_micros: int
    balance_after_micros: int
    created: bool  # False: this idempotency key was posted before; nothing changed now


_EXISTING = """
SELECT id, account_id, seq, kind, amount_micros, balance_after_micros
FROM ledger_transactions WHERE idempotency_key = $1
"""
_LOCK_BALANCE = """
INSERT INTO ledger_balances (account_id, currency)
SELECT id, currency FROM accounts WHERE id = $1
ON CONFLICT (account_id) DO UPDATE SET account_id = excluded.account_id
RETURNING balance_micros, version
"""
_INSERT_TRANSACTION = """
INSERT INTO ledger_transactions (account_id, seq, kind, amount_micros, balance_after_micros,
                                 idempotency_key, reason, reference, expires_at, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id
"""
_INSERT_POSTINGS = """
INSERT INTO ledger_postings (transaction_id, book, amount_micros) VALUES ($1, $2, $3), ($1, $4, $5)
"""
_UPDATE_BALANCE = """
UPDATE ledger_balances SET balance_micros = $2, version = $3, updated_at = now() WHERE account_id = $1
"""
# Soonest-expiring credit is used first (it is the credit the customer would otherwise lose).
_OPEN_GRANTS = """
SELECT transaction_id, remaining_micros FROM ledger_grants
WHERE account_id = $1 AND remaining_micros > 0 AND NOT expired
ORDER BY expires_at, transaction_id FOR UPDATE
"""


def _validate(entry: Entry) -> None:
    if entry.amount_micros == 0:
        raise ValueError("a ledger entry moves a non-zero amount")
    if entry.kind in ("topup", "grant") and entry.amount_micros < 0:
        raise ValueError(f"a {entry.kind} adds credit")
    if entry.kind in ("charge", "refund", "expiry") and entry.amount_micros > 0:
        raise ValueError(f"a {entry.kind} takes credit away")
    if entry.expires_at is not None and entry.kind != "grant":
        raise ValueError("only a grant expires")


async def _replayed(conn: Conn, entry: Entry) -> Posted | None:
    row = await conn.fetchrow(_EXISTING, entry.idempotency_key)
    if row is None:
        return None
    same = (row["account_id"], row["kind"], row["amount_micros"]) == (
        entry.account_id, entry.kind, entry.amount_micros)
    if not same:
        raise IdempotencyConflict(entry.idempotency_key)
    return Posted(
        row["id"], row["account_id"], row["seq"], row["amount_micros"], row["balance_after_micros"], False
    )


async def post(conn: Conn, entry: Entry) -> Posted:
    """Append ``entry`` (inside the caller's transaction), or return what the same key posted before.

    Raises ``IdempotencyConflict`` when the key was used for a different entry, ``InsufficientBalance``
    when a non-charge debit would overdraw, ``LookupError`` when the account does not exist.
    """
    _validate(entry)
    balance_row = await conn.fetchrow(_LOCK_BALANCE, entry.account_id)
    if balance_row is None:
        raise LookupError(entry.account_id)
    replayed = await _replayed(conn, entry)  # under the account's lock: a concurrent twin has finished
    if replayed is not None:
        return replayed
    balance, seq = balance_row["balance_micros"] + entry.amount_micros, balance_row["version"] + 1
    if balance < 0 and entry.amount_micros < 0 and entry.kind not in MAY_OVERDRAW:
        raise InsufficientBalance(balance_row["balance_micros"], -entry.amount_micros)
    occurred = entry.occurred_at or datetime.now(UTC)
    tx_id: int = await conn.fetchval(
        _INSERT_TRANSACTION, entry.account_id, seq, entry.kind, entry.amount_micros, balance,
        entry.idempotency_key, entry.reason, entry.reference, entry.expires_at, occurred,
    )
    await conn.execute(
        _INSERT_POSTINGS, tx_id, wallet_book(entry.account_id), entry.amount_micros,
        COUNTER_BOOK[entry.kind], -entry.amount_micros,
    )
    await conn.execute(_UPDATE_BALANCE, entry.account_id, balance, seq)
    if entry.kind == "grant" and entry.expires_at is not None:
        await conn.execute(
            "INSERT INTO ledger_grants (transaction_id, account_id, remaining_micros, expires_at) "
            "VALUES ($1, $2, $3, $4)", tx_id, entry.account_id, entry.amount_micros, entry.expires_at,
        )
    elif entry.amount_micros < 0 and entry.kind != "expiry":
        await _draw_on_grants(conn, entry.account_id, -entry.amount_micros)
    return Posted(tx_id, entry.account_id, seq, entry.amount_micros, balance, True)


async def _draw_on_grants(conn: Conn, account_id: str, amount: int) -> None:
    """Spend ``amount`` from the account's open grants, soonest-expiring first (what is not covered
    by a grant came from non-expiring credit: top-ups and grants without an expiry)."""
    for grant in await conn.fetch(_OPEN_GRANTS, account_id):
        if amount <= 0:
            return
        used = min(amount, grant["remaining_micros"])
        await conn.execute(
            "UPDATE ledger_grants SET remaining_micros = remaining_micros - $2 WHERE transaction_id = $1",
            grant["transaction_id"], used,
        )
        amount -= used
