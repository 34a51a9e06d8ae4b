"""What metering's usage handlers are given besides the caller and the request
(``services.common.manage``): the store, and a clock for the default end of a period."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.metering.store import UsageStore


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    store: UsageStore
    now: Callable[[], datetime] = field(default=_utcnow)
