"""The ledger side of a statement: opening balance, one line per kind, closing balance — read from the
credit ledger's ``ledger_transactions`` (migration 0003), never written.

Which statement a transaction is on:

- By default, the period that holds its ``occurred_at`` (a charge: its request's start; a top-up: when
  it was paid), so usage and the charges for it land on the same statement.
- Unless that period was already closed when the transaction was posted (``seq`` above the
  ``ledger_seq`` the closed statement recorded): a closed statement never changes, so such a late
  transaction goes on the first statement still open after it, the one right after the last closed.

Every amount counts on exactly one statement, so ``closing = opening + Σ lines`` on each one and each
statement's opening is the previous one's closing, to the micro-dollar. ``seq`` (the ledger's
gap-free per-account order) rather than ``created_at`` decides "posted after the close": a statement
closes inside one REPEATABLE READ snapshot, whose highest seq is exactly what it included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.billing.db import Conn

_LINES = """
SELECT kind, count(*) AS n, sum(amount_micros)::bigint AS amount
FROM ledger_transactions
WHERE account_id = $1
  AND ((occurred_at >= $2 AND occurred_at < $3) OR ($4 AND occurred_at < $2 AND seq > $5))
GROUP BY kind
"""
# not on any closed statement and before the period: what moves the opening past the last closing
_BEFORE = """
SELECT coalesce(sum(amount_micros), 0)::bigint
FROM ledger_transactions
WHERE account_id = $1 AND occurred_at < $2 AND ($3::timestamptz IS NULL OR occurred_at >= $3 OR seq > $4)
"""
_HIGH_WATER = "SELECT coalesce(max(seq), 0)::bigint FROM ledger_transactions WHERE account_id = $1"


@dataclass(frozen=True)
class Closed:
    """What the last closed statement before a period left behind."""

    end: datetime
    ledger_seq: int
    closing_micros: int


@dataclass(frozen=True)
class LedgerTotals:
    opening_micros: int
    lines: dict[str, tuple[int, int]]  # kind → (count, amount micros)
    closing_micros: int
    ledger_seq: int  # the account's highest seq seen: what a closing records


async def ledger_totals(conn: Conn, account_id: str, start: datetime, end: datetime,
                        closed: Closed | None) -> LedgerTotals:
    """The ledger part of the statement [start, end), given the last closed statement before it."""
    follows = closed is not None and closed.end == start  # late transactions are this statement's
    seq = closed.ledger_seq if closed is not None else 0
    rows = await conn.fetch(_LINES, account_id, start, end, follows, seq)
    lines = {r["kind"]: (int(r["n"]), int(r["amount"])) for r in rows}
    if closed is None:
        opening = int(await conn.fetchval(_BEFORE, account_id, start, None, 0))
    elif follows:
        opening = closed.closing_micros
    else:
        before = await conn.fetchval(_BEFORE, account_id, start, closed.end, seq)
        opening = closed.closing_micros + int(before)
    high = int(await conn.fetchval(_HIGH_WATER, account_id))
    return LedgerTotals(opening, lines, opening + sum(a for _, a in lines.values()), high)
