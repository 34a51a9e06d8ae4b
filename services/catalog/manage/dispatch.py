"""The catalog's management dispatcher: its route table served by ``services.common.manage.dispatch``,
timed under the catalog's own metric name, and its 503 naming the catalog's database."""

from __future__ import annotations

from prometheus_client import Histogram

from services.catalog.manage.context import Deps
from services.catalog.manage.routes import ROUTES
from services.common.manage.dispatch import Dispatcher

LATENCY = Histogram(
    "tollgate_catalog_manage_seconds", "Management API calls handled by catalog", ["route", "status"]
)
UNAVAILABLE = "The catalog database is unavailable; retry shortly."
dispatch: Dispatcher[Deps] = Dispatcher(ROUTES, LATENCY, UNAVAILABLE)
