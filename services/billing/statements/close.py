"""Closing statements: every finished month not yet closed, for every account, in order.

A month closes only once ``grace`` has passed since its end, so that metering has caught up with the
usage of its last minutes (events travel edge → Kafka → metering in seconds normally; the grace covers
consumer lag and short outages). Usage or ledger transactions for a month that arrive after it closed
are not lost: they go on the next statement (see ``build`` and ``ledger_lines``).

Months close in order per account, from the account's creation month, so a statement's opening is
always the previous closing. Idempotent: the row is inserted with ``ON CONFLICT DO NOTHING``, and a
session advisory lock lets only one run work at a time (another replica's run answers "skipped"), so
running it twice, or on two replicas at once, closes each statement once. The nightly task
(``run_closer``) and ``POST /v1/manage/billing/close`` both call ``close_due``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import orjson
import structlog

from services.billing.db import Conn
from services.billing.statements import store
from services.billing.statements.build import compute
from services.billing.statements.period import Period, month_of, months
from services.billing.statements.usage_client import MeteringUsage
from services.common.errors import TollgateError

log = structlog.get_logger(__name__)
LOCK_ID: Final = 0x57A7_E3E7  # arbitrary, constant: "statements close"
_ACCOUNTS = """
SELECT a.id, a.created_at, max(s.period_start) AS last_closed
FROM accounts a LEFT JOIN statements s ON s.account_id = a.id
GROUP BY a.id ORDER BY a.id
"""


@dataclass
class CloseResult:
    closed: list[tuple[str, str]] = field(default_factory=list)  # (account id, period)
    skipped: bool = False  # another run held the lock


def last_due(now: datetime, grace: timedelta) -> Period:
    """The latest month whose end is at least ``grace`` ago."""
    cutoff = now - grace
    return month_of(month_of(cutoff).start - timedelta(microseconds=1))


async def close_one(conn: Conn, metering: MeteringUsage, account_id: str, period: Period) -> bool:
    """Close one month (the one right after the account's last closed); whether this call stored it."""
    async with conn.transaction(isolation="repeatable_read"):
        if await store.get_closed(conn, account_id, period.label) is not None:
            return False
        previous = await store.last_closed_before(conn, account_id, period.start)
        if previous is not None and previous.period_end != period.start:
            raise RuntimeError(f"statements of {account_id} would close out of order at {period.label}")
        computed = await compute(conn, metering, account_id, period, previous, request_id="statements-close")
        closed_at = datetime.now(UTC)
        view = computed.view.model_copy(update={"status": "closed", "closed_at": closed_at})
        return await store.insert_closed(conn, store.ClosedRow(
            account_id=account_id, period=period.label, period_start=period.start, period_end=period.end,
            statement=orjson.dumps(view.model_dump(mode="json", by_alias=True)),
            usage_cost_micros=computed.usage.cost_micros, usage_requests=computed.usage.requests,
            usage_since=computed.usage_since, usage_through=computed.usage_through,
            opening_micros=computed.ledger.opening_micros, closing_micros=computed.ledger.closing_micros,
            ledger_seq=computed.ledger.ledger_seq, closed_at=closed_at,
        ))


async def close_due(pool: asyncpg.Pool, metering: MeteringUsage, now: datetime,
                    grace: timedelta) -> CloseResult:
    """Close every due month of every account; an account whose close fails is retried next run."""
    result = CloseResult()
    due = last_due(now, grace)
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_ID):
            result.skipped = True
            return result
        try:
            for account in await conn.fetch(_ACCOUNTS):
                last = account["last_closed"]
                first = month_of(account["created_at"]) if last is None else month_of(last).next()
                for period in months(first, due):
                    try:
                        if await close_one(conn, metering, account["id"], period):
                            result.closed.append((account["id"], period.label))
                    except (TollgateError, asyncpg.PostgresError, RuntimeError) as exc:
                        log.warning("statement_close_failed", account_id=account["id"], period=period.label,
                                    error_type=type(exc).__name__)
                        break  # in order: the next month waits for this one
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)
    if result.closed:
        log.info("statements_closed", count=len(result.closed), through=due.label)
    return result


async def run_closer(pool: asyncpg.Pool, metering: MeteringUsage, interval: float, grace: timedelta,
                     stop: asyncio.Event) -> None:
    """The nightly job: look every ``interval`` seconds; each month closes on the first look after its
    end + grace (so, with the defaults, within an hour after midnight UTC of the month's 2nd day)."""
    while not stop.is_set():
        try:
            await close_due(pool, metering, datetime.now(UTC), grace)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("statements_close_run_failed", error_type=type(exc).__name__)
        except Exception:  # a bug must not end the nightly job for the life of the process
            log.exception("statements_close_run_crashed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
