"""Statement periods and when a month is due for closing: pure functions, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.billing.statements.close import last_due
from services.billing.statements.period import month_of, months, parse_period
from services.common.errors import InvalidRequest


def test_a_month_is_half_open_in_utc_and_december_rolls_into_the_next_year() -> None:
    dec = parse_period("2026-12")
    assert (dec.start, dec.end, dec.is_month) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC),
                                                  True)
    assert dec.next().label == "2027-01"
    assert month_of(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)).label == "2026-11"
    assert month_of(datetime(2026, 12, 1, tzinfo=UTC)).label == "2026-12"
    assert [p.label for p in months(parse_period("2026-11"), parse_period("2027-02"))] == [
        "2026-11", "2026-12", "2027-01", "2027-02"]


def test_a_range_of_days_includes_both_days() -> None:
    days = parse_period("2026-11-03..2026-11-03")
    assert (days.start, days.end, days.is_month) == (datetime(2026, 11, 3, tzinfo=UTC),
                                                     datetime(2026, 11, 4, tzinfo=UTC), False)


@pytest.mark.parametrize("text", ["2026-00", "2026-13", "26-11", "2026-11-31..2026-12-01", "2026-11-02..2026-11-01",
                                  "2025-01-01..2026-01-02", "2026-11-01..", "2200-01"])
def test_anything_else_is_refused_naming_the_period(text: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_period(text)
    assert refused.value.param == "period"


def test_a_month_is_due_only_once_its_grace_has_passed() -> None:
    grace = timedelta(hours=24)
    assert last_due(datetime(2026, 12, 1, 23, 59, tzinfo=UTC), grace).label == "2026-10"
    assert last_due(datetime(2026, 12, 2, 0, 0, tzinfo=UTC), grace).label == "2026-11"
    assert last_due(datetime(2027, 1, 1, 0, 0, tzinfo=UTC), timedelta(0)).label == "2026-12"
