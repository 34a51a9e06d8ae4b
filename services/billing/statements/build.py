"""A statement computed now: usage from metering's usage API, ledger lines from the credit ledger.

Usage belongs to the period of each request's start (metering's ``started_at``); the lines are
metering's rows for the account split by (model, key), the by-model and by-key views are sums of
those lines, and the total must equal metering's own total for the period — if it does not, no
statement is given (503) rather than one whose parts disagree.

Late usage: a closed statement never changes, yet metering may still receive usage for its period
(a usage event spooled through a Kafka outage arrives when it arrives). Each closed statement records
the usage billed up to its end (``usage_through``, from ``usage_since``); the statement right after
the last closed one adds ``late`` = metering's total now over [usage_since, last end) − usage_through.
So every request's usage is on exactly one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import structlog

from services.billing.db import Conn
from services.billing.statements.ledger_lines import Closed, LedgerTotals, ledger_totals
from services.billing.statements.period import Period
from services.billing.statements.store import ClosedRow
from services.billing.statements.usage_client import MeteringUsage, Usage, UsageAnswer
from services.billing.statements.views import (
    LEDGER_KINDS,
    KeyLine,
    LedgerLine,
    LedgerSection,
    ModelLine,
    StatementView,
    UsageLine,
    UsageSection,
    UsageTotals,
)
from services.common.errors import DependencyUnavailable
from services.common.money import format_micros

log = structlog.get_logger(__name__)
L = TypeVar("L", bound=UsageTotals)


@dataclass(frozen=True)
class Computed:
    """A statement and what closing it records besides."""

    view: StatementView
    usage: Usage  # the period's usage + late usage: what this statement bills
    usage_since: datetime
    usage_through: Usage
    ledger: LedgerTotals


def _totals(usage: Usage) -> dict[str, Any]:
    data: dict[str, Any] = usage.as_dict()
    data["cost"] = format_micros(data.pop("cost_micros"))
    return data


def _grouped(lines: dict[tuple[str, str], Usage], pick: Callable[[tuple[str, str]], str],
             make: Callable[[str, Usage], L]) -> list[L]:
    sums: dict[str, Usage] = {}
    for key, usage in lines.items():
        sums[pick(key)] = sums.get(pick(key), Usage()) + usage
    return [make(name, sums[name]) for name in sorted(sums)]


def _sum(usages: Iterable[Usage]) -> Usage:
    total = Usage()
    for usage in usages:
        total += usage
    return total


def usage_section(answer: UsageAnswer, late: Usage) -> UsageSection:
    total = _sum(answer.lines.values())
    if total != answer.total:
        log.error("statement_usage_mismatch", lines=total.as_dict(), metering=answer.total.as_dict())
        raise DependencyUnavailable("Metering's usage lines do not add up to its total; retry shortly.")
    return UsageSection(
        lines=[UsageLine(model=m, key_id=k, **_totals(answer.lines[(m, k)]))
               for m, k in sorted(answer.lines)],
        by_model=_grouped(answer.lines, lambda mk: mk[0], lambda m, u: ModelLine(model=m, **_totals(u))),
        by_key=_grouped(answer.lines, lambda mk: mk[1], lambda k, u: KeyLine(key_id=k, **_totals(u))),
        total=UsageTotals(**_totals(total)),
        late=UsageTotals(**_totals(late)),
    )


def ledger_section(totals: LedgerTotals) -> LedgerSection:
    return LedgerSection(
        opening_balance=format_micros(totals.opening_micros),
        lines=[LedgerLine(kind=kind, count=totals.lines.get(kind, (0, 0))[0],
                          amount=format_micros(totals.lines.get(kind, (0, 0))[1])) for kind in LEDGER_KINDS],
        closing_balance=format_micros(totals.closing_micros),
    )


async def compute(conn: Conn, metering: MeteringUsage, account_id: str, period: Period,
                  previous: ClosedRow | None, request_id: str = "") -> Computed:
    """The statement of ``period`` as of now; ``previous`` is the last closed statement before it
    (None for a range of days: computed by occurrence alone, with no late lines)."""
    answer = await metering.usage(account_id, period.start, period.end, request_id)
    late, since, through = Usage(), period.start, Usage()
    if previous is not None:
        since = previous.usage_since
        if previous.period_end == period.start:
            seen = await metering.usage(account_id, previous.usage_since, previous.period_end, request_id)
            late = seen.total - previous.usage_through
            through = previous.usage_through + late
        else:  # late usage of the closed ones belongs to the statement right after them, not this one
            through = previous.usage_through
    closed = None if previous is None else Closed(previous.period_end, previous.ledger_seq,
                                                  previous.closing_micros)
    ledger = await ledger_totals(conn, account_id, period.start, period.end, closed)
    view = StatementView(
        account_id=account_id, period=period.label, start=period.start, end=period.end, status="open",
        closed_at=None, usage=usage_section(answer, late), ledger=ledger_section(ledger),
    )
    billed = answer.total + late
    return Computed(view, billed, since, through + answer.total, ledger)
