"""The ``statements`` table (migration 0005): one row per closed (account, month), written once.

``INSERT ... ON CONFLICT DO NOTHING`` on the primary key makes closing idempotent even when two runs
(two replicas, or the nightly job and ``POST /v1/manage/billing/close``) race: one row wins, the
other run's work is dropped, and what is served afterwards is always the stored row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from services.billing.db import Conn
from services.billing.statements.usage_client import Usage

_COLUMNS = ("account_id, period, period_start, period_end, statement, usage_cost_micros, usage_requests,"
            " usage_since, usage_through, opening_micros, closing_micros, ledger_seq, closed_at")


@dataclass(frozen=True)
class ClosedRow:
    account_id: str
    period: str
    period_start: datetime
    period_end: datetime
    statement: bytes  # the StatementView as JSON, exactly as served
    usage_cost_micros: int
    usage_requests: int
    usage_since: datetime  # usage_through covers [usage_since, period_end) as billed so far
    usage_through: Usage
    opening_micros: int
    closing_micros: int
    ledger_seq: int
    closed_at: datetime


def _row(r: asyncpg.Record) -> ClosedRow:
    return ClosedRow(
        r["account_id"], r["period"], r["period_start"], r["period_end"], r["statement"].encode(),
        r["usage_cost_micros"], r["usage_requests"], r["usage_since"],
        Usage.from_dict(orjson.loads(r["usage_through"])), r["opening_micros"], r["closing_micros"],
        r["ledger_seq"], r["closed_at"],
    )


async def get_closed(conn: Conn, account_id: str, period: str) -> ClosedRow | None:
    r = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM statements WHERE account_id = $1 AND period = $2",  # noqa: S608
        account_id, period)
    return _row(r) if r is not None else None


async def last_closed_before(conn: Conn, account_id: str, start: datetime) -> ClosedRow | None:
    r = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM statements WHERE account_id = $1 AND period_start < $2"  # noqa: S608
        " ORDER BY period_start DESC LIMIT 1", account_id, start)
    return _row(r) if r is not None else None


async def list_closed(conn: Conn, account_id: str) -> list[ClosedRow]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM statements WHERE account_id = $1 ORDER BY period_start DESC",  # noqa: S608
        account_id)
    return [_row(r) for r in rows]


async def insert_closed(conn: Conn, row: ClosedRow) -> bool:
    """Whether this call stored it (False: it was already closed, by this run or another)."""
    done = await conn.fetchval(
        f"INSERT INTO statements ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9::jsonb,"  # noqa: S608
        " $10, $11, $12, $13) ON CONFLICT (account_id, period) DO NOTHING RETURNING true",
        row.account_id, row.period, row.period_start, row.period_end, row.statement.decode(),
        row.usage_cost_micros, row.usage_requests, row.usage_since,
        orjson.dumps(row.usage_through.as_dict()).decode(), row.opening_micros, row.closing_micros,
        row.ledger_seq, row.closed_at,
    )
    return bool(done)
