"""Billing's management dispatcher: its route table served by ``services.common.manage.dispatch``,
timed under billing's own metric name, and its 503 naming billing's database."""

from __future__ import annotations

from prometheus_client import Histogram

from services.billing.manage.context import Deps
from services.billing.manage.routes import ROUTES
from services.common.manage.dispatch import Dispatcher

LATENCY = Histogram(
    "tollgate_billing_manage_seconds", "Management API calls handled by billing", ["route", "status"]
)
UNAVAILABLE = "The billing database is unavailable; retry shortly."
dispatch: Dispatcher[Deps] = Dispatcher(ROUTES, LATENCY, UNAVAILABLE)
