"""SQL of the usage API over the rollup projections of usage_raw (migration 0002).

A query is answered from a projection only if it groups and filters by the projection's own key
expression, so the time filter is written on ``toStartOf<Level>(started_at)`` — exact, because the
period's bounds are whole units of that level — and a coarser bucket is computed from it
(``toStartOfDay(toStartOfHour(started_at))``). The level is the coarsest of day / hour / minute on
which both bounds fall and which is no coarser than the bucket: a 30-day daily series reads ~30 rows
per (account, key, model) from usage_by_day instead of every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from services.metering.writer import quote

UNIT_SECONDS: Final = {"minute": 60, "hour": 3600, "day": 86400}
START_OF: Final = {"minute": "toStartOfMinute", "hour": "toStartOfHour", "day": "toStartOfDay"}
COLUMN_OF: Final = {"account": "account_id", "key": "key_id", "model": "model_served"}
# Exactly the projections' aggregate expressions (a different spelling would not match them).
AGGREGATES: Final = (
    ("requests", "count()"),
    ("failed_requests", "countIf(status = 'error')"),
    ("input_tokens", "sum(input_tokens)"),
    ("cached_input_tokens", "sum(cached_input_tokens)"),
    ("cache_write_tokens", "sum(cache_write_tokens)"),
    ("output_tokens", "sum(output_tokens)"),
    ("reasoning_tokens", "sum(reasoning_tokens)"),
    ("cost_micros", "sum(cost_micros)"),
)


@dataclass(frozen=True)
class UsageFilter:
    start: datetime
    end: datetime
    account_id: str | None = None
    key_id: str | None = None
    model: str | None = None


def level_for(start: datetime, end: datetime, group_by: str) -> str:
    """The coarsest rollup whose unit divides both bounds and is no coarser than the bucket."""
    candidates: tuple[str, ...] = ("day", "hour", "minute")
    if group_by in UNIT_SECONDS:
        candidates = candidates[candidates.index(group_by):]
    for level in candidates:
        size = UNIT_SECONDS[level]
        if int(start.timestamp()) % size == 0 and int(end.timestamp()) % size == 0:
            return level
    return "minute"


def _time(value: datetime) -> str:
    return f"toDateTime('{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}', 'UTC')"


def usage_sql(where: UsageFilter, group_by: str, breakdown: tuple[str, ...], limit: int) -> str:
    """One row per (bucket, breakdown values): ``bucket`` in epoch seconds (absent for ``none``)."""
    level = level_for(where.start, where.end, group_by)
    key = f"{START_OF[level]}(started_at)"
    conditions = [f"{key} >= {_time(where.start)}", f"{key} < {_time(where.end)}"]
    for column, value in (("account_id", where.account_id), ("key_id", where.key_id),
                          ("model_served", where.model)):
        if value is not None:
            conditions.append(f"{column} = {quote(value)}")
    select: list[str] = []
    group: list[str] = []
    if group_by != "none":
        bucket = key if group_by == level else f"{START_OF[group_by]}({key})"
        select.append(f"toUnixTimestamp({bucket}) AS bucket")
        group.append("bucket")
    for dim in breakdown:
        select.append(f"{COLUMN_OF[dim]} AS {dim}")
        group.append(dim)
    select += [f"{expr} AS {name}" for name, expr in AGGREGATES]
    # values reach the SQL only through quote() (and were validated against id patterns before)
    sql = f"SELECT {', '.join(select)} FROM usage_raw WHERE {' AND '.join(conditions)}"  # noqa: S608
    if group:
        sql += f" GROUP BY {', '.join(group)} ORDER BY {', '.join(group)}"
    return sql + f" LIMIT {limit}"
