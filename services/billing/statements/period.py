"""Statement periods: a calendar month in UTC (``"2026-11"``), the unit that is closed, or an explicit
range of whole UTC days (``"2026-11-03..2026-11-09"``, both days included), always computed live.

Every period is a half-open interval [start, end) of instants, so consecutive months tile time with no
gap and no overlap, and the same bounds go to metering (whose usage API takes [from, to)) and to the
ledger query. Whole days keep metering's answer on its daily rollup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from services.common.errors import InvalidRequest

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
FIRST_YEAR: Final = 2000  # metering keeps nothing older
LAST_YEAR: Final = 2199
MAX_RANGE_DAYS: Final = 366
_BAD = ("'period' must be a month such as \"2026-11\" or a range of whole days such as "
        "\"2026-11-03..2026-11-09\" (both days included).")


@dataclass(frozen=True, order=True)
class Period:
    start: datetime  # inclusive, midnight UTC
    end: datetime  # exclusive, midnight UTC
    label: str  # "2026-11" or "2026-11-03..2026-11-09"

    @property
    def is_month(self) -> bool:
        return _MONTH.match(self.label) is not None

    def next(self) -> Period:
        """The following calendar month (only meaningful for a month)."""
        return month_of(self.end)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def month_of(when: datetime) -> Period:
    """The calendar month (UTC) that holds ``when``."""
    when = when.astimezone(UTC)
    start = datetime(when.year, when.month, 1, tzinfo=UTC)
    end = datetime(when.year + when.month // 12, when.month % 12 + 1, 1, tzinfo=UTC)
    return Period(start, end, f"{when.year:04d}-{when.month:02d}")


def parse_period(text: str) -> Period:
    """A path's ``period`` (a ``.csv`` suffix already removed), or the API's 400 naming ``period``."""
    month = _MONTH.match(text)
    if month:
        year, number = int(month.group(1)), int(month.group(2))
        if not (FIRST_YEAR <= year <= LAST_YEAR and 1 <= number <= 12):
            raise InvalidRequest(_BAD, param="period", code="invalid_period")
        return month_of(datetime(year, number, 1, tzinfo=UTC))
    days = _RANGE.match(text)
    if not days:
        raise InvalidRequest(_BAD, param="period", code="invalid_period")
    try:
        first, last = date.fromisoformat(days.group(1)), date.fromisoformat(days.group(2))
    except ValueError:
        raise InvalidRequest(_BAD, param="period", code="invalid_period") from None
    if last < first:
        raise InvalidRequest("The last day of 'period' is before its first day.", param="period",
                             code="invalid_period")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidRequest(f"'period' may span at most {MAX_RANGE_DAYS} days.", param="period",
                             code="invalid_period")
    if first.year < FIRST_YEAR or last.year > LAST_YEAR:
        raise InvalidRequest(_BAD, param="period", code="invalid_period")
    return Period(_midnight(first), _midnight(last) + timedelta(days=1), text)


def months(first: Period, last: Period) -> list[Period]:
    """Every month from ``first`` to ``last``, both included (empty when ``last`` is earlier)."""
    out: list[Period] = []
    current = first
    while current.start <= last.start:
        out.append(current)
        current = current.next()
    return out
