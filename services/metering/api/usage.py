"""``GET /v1/manage/usage``: totals and series of requests, tokens by kind and cost, per bucket and
optionally split by account / key / model, from the rollup projections.

Tenancy: the admin sees every account (``account_id`` optional). A management key sees its own account
only: ``account_id`` defaults to it, and naming any other account answers 404 exactly as an account
that does not exist would — a caller cannot probe other tenants' ids, and usage of another account is
never in the answer (every query it runs carries ``account_id = <its own>``). Metering knows no account
tree, so a parent's management key does not see its sub-accounts' usage here; the admin key does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from services.common.errors import InvalidRequest, NotFound
from services.common.manage.context import Call, Reply
from services.common.money import format_micros
from services.metering.api.context import Deps
from services.metering.api.queries import AGGREGATES, UNIT_SECONDS, UsageFilter, usage_sql
from services.metering.api.views import UsageBucket, UsageRow, UsageTotals, UsageView
from services.metering.api.wire import UsageQuery

MAX_BUCKETS: Final = 1440  # a day of minutes, 60 days of hours, ~4 years of days
MAX_ROWS: Final = 20_000  # bucket × breakdown rows in one answer
_COUNTS = [name for name, _ in AGGREGATES if name != "cost_micros"]


def _end_of_this_minute(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)


def bucket_starts(start: datetime, end: datetime, group_by: str) -> list[datetime]:
    """The bucket boundaries in [start, end): aligned to the unit (UTC), the first one clipped."""
    if group_by == "none":
        return [start]
    size = UNIT_SECONDS[group_by]
    first = int(start.timestamp()) // size * size
    stop = int(end.timestamp())
    return [max(start, datetime.fromtimestamp(t, UTC)) for t in range(first, stop, size)]


def bucket_count(start: datetime, end: datetime, group_by: str) -> int:
    if group_by == "none":
        return 1
    size = UNIT_SECONDS[group_by]
    return -(-int(end.timestamp()) // size) - int(start.timestamp()) // size


def _totals(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {name: int(row[name]) for name in _COUNTS}
    out["cost"] = format_micros(int(row["cost_micros"]))
    return out


def _account_scope(call: Call, query: UsageQuery) -> str | None:
    caller = call.caller
    if caller.admin:
        return query.account_id
    if query.account_id is not None and query.account_id != caller.account_id:
        raise NotFound(f"No account found with id '{query.account_id}'.", param="account_id",
                       code="account_not_found")
    return caller.account_id


async def get_usage(deps: Deps, call: Call) -> Reply:
    query = call.query_as(UsageQuery)
    account_id = _account_scope(call, query)
    start = query.start
    end = query.end if query.end is not None else _end_of_this_minute(deps.now())
    if end <= start:
        raise InvalidRequest("'to' must be after 'from'.", param="to", code="invalid_value")
    if bucket_count(start, end, query.group_by) > MAX_BUCKETS:
        raise InvalidRequest(
            f"The period holds more than {MAX_BUCKETS} {query.group_by} buckets; shorten it or use a "
            "coarser group_by.", param="group_by", code="too_many_buckets",
        )
    where = UsageFilter(start, end, account_id, query.key_id, query.model)
    rows = await deps.store.query(usage_sql(where, query.group_by, query.breakdown, MAX_ROWS + 1))
    rows = [r for r in rows if int(r["requests"])]  # a total over nothing is one row of zeros
    if len(rows) > MAX_ROWS:
        raise InvalidRequest(
            f"The answer would hold more than {MAX_ROWS} rows; shorten the period, use a coarser group_by, "
            "filter by account_id / key_id / model, or split by fewer dimensions.",
            param="breakdown", code="too_many_rows",
        )
    starts = bucket_starts(start, end, query.group_by)
    results: dict[int, list[UsageRow]] = {int(s.timestamp()) // _unit(query.group_by): [] for s in starts}
    for row in rows:
        bucket = int(row["bucket"]) // _unit(query.group_by) if query.group_by != "none" else 0
        results.setdefault(bucket, []).append(UsageRow(
            **_totals(row),
            account_id=row.get("account"), key_id=row.get("key"), model=row.get("model"),
        ))
    buckets = [
        UsageBucket(start=s, end=e, results=results[int(s.timestamp()) // _unit(query.group_by)])
        for s, e in zip(starts, [*starts[1:], end], strict=True)
    ]
    totals = {name: sum(int(r[name]) for r in rows) for name, _ in AGGREGATES}
    return Reply(200, UsageView.model_validate({
        "from": start, "to": end, "group_by": query.group_by, "breakdown": list(query.breakdown),
        "data": buckets, "totals": UsageTotals(**_totals(totals)),
    }))


def _unit(group_by: str) -> int:
    return UNIT_SECONDS.get(group_by, 1 << 62)  # "none": every timestamp maps to bucket 0
