"""What statements need besides billing's database: metering's usage API, the closing grace, a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.billing.statements.usage_client import MeteringUsage


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StatementsDeps:
    metering: MeteringUsage
    grace: timedelta = timedelta(hours=24)
    now: Callable[[], datetime] = field(default=_utcnow)
