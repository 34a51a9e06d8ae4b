"""Handlers of the statement routes: list an account's months, one statement (JSON or CSV), and the
operator's "close now". Tenancy is billing's: the caller must see the account (its tree), else 404.

A closed month is served from the ``statements`` table, byte for byte what was stored at closing;
anything else (the current month, a finished month not yet closed, a range of days) is computed now.
"""

from __future__ import annotations

from services.billing.manage import store as accounts
from services.billing.manage.context import Deps
from services.billing.manage.tenancy import admin_only, require_account
from services.billing.statements import store
from services.billing.statements.build import compute
from services.billing.statements.close import close_due
from services.billing.statements.context import StatementsDeps
from services.billing.statements.export import to_csv
from services.billing.statements.period import month_of, months, parse_period
from services.billing.statements.views import (
    ClosedRef,
    CloseRun,
    StatementList,
    StatementSummary,
    StatementView,
)
from services.billing.statements.wire import StatementQuery
from services.common.errors import DependencyUnavailable
from services.common.manage.context import Call, Reply
from services.common.money import format_micros

DESCRIPTION = """Usage lines by model and key (from metering), their totals, usage of earlier closed months
that reached metering late, and the credit ledger: opening balance, one line per kind, closing balance.
A closed month is served as stored at closing and never changes; any other period is computed now.
`format=csv`, or a `.csv` suffix on the period, answers the same statement as a CSV download."""


def _statements(deps: Deps) -> StatementsDeps:
    if deps.statements is None:
        raise DependencyUnavailable("Statements are not configured on this billing instance.")
    return deps.statements


async def list_statements(deps: Deps, call: Call) -> Reply:
    account_id, conf = call.params["id"], _statements(deps)
    async with deps.pool.acquire() as conn:
        row = await require_account(conn, call.caller, await accounts.get_account(conn, account_id),
                                    account_id)
        closed = {c.period: c for c in await store.list_closed(conn, account_id)}
    first = month_of(row["created_at"])
    if closed:
        first = min(first, month_of(min(c.period_start for c in closed.values())))
    data = []
    for period in reversed(months(first, month_of(conf.now()))):
        done = closed.get(period.label)
        data.append(StatementSummary(
            period=period.label, start=period.start, end=period.end,
            status="closed" if done else "open", closed_at=done.closed_at if done else None,
            usage_cost=format_micros(done.usage_cost_micros) if done else None,
            closing_balance=format_micros(done.closing_micros) if done else None,
        ))
    return Reply(200, StatementList(data=data))


async def get_statement(deps: Deps, call: Call) -> Reply:
    account_id, text, conf = call.params["id"], call.params["period"], _statements(deps)
    as_csv = call.query_as(StatementQuery).format == "csv" or text.endswith(".csv")
    period = parse_period(text.removesuffix(".csv"))
    async with deps.pool.acquire() as conn:
        await require_account(conn, call.caller, await accounts.get_account(conn, account_id), account_id)
        async with conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot
            closed = await store.get_closed(conn, account_id, period.label) if period.is_month else None
            if closed is not None:
                view = StatementView.model_validate_json(closed.statement)
            else:
                previous = (await store.last_closed_before(conn, account_id, period.start)
                            if period.is_month else None)
                computed = await compute(conn, conf.metering, account_id, period, previous, call.request_id)
                view = computed.view
    if as_csv:
        return Reply(200, to_csv(view), media_type="text/csv; charset=utf-8",
                     filename=f"statement-{account_id}-{period.label}.csv")
    return Reply(200, view)


async def close_statements(deps: Deps, call: Call) -> Reply:
    admin_only(call.caller, "close statements")
    conf = _statements(deps)
    result = await close_due(deps.pool, conf.metering, conf.now(), conf.grace)
    return Reply(200, CloseRun(closed=[ClosedRef(account_id=a, period=p) for a, p in result.closed],
                               skipped=result.skipped))
