"""Metering's management dispatcher: its route table served by ``services.common.manage.dispatch``,
timed under metering's own metric name, and its 503 naming metering's store (answered when the
ClickHouse server cannot be reached: the store driver raises ``ConnectionError`` then)."""

from __future__ import annotations

from prometheus_client import Histogram

from services.common.manage.dispatch import Dispatcher
from services.metering.api.context import Deps
from services.metering.api.routes import ROUTES

LATENCY = Histogram(
    "tollgate_metering_manage_seconds", "Usage API calls handled by metering", ["route", "status"]
)
UNAVAILABLE = "The usage store is unavailable; retry shortly."
dispatch: Dispatcher[Deps] = Dispatcher(ROUTES, LATENCY, UNAVAILABLE)
