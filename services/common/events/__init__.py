"""Versioned event schemas, one module per topic, and the explicit topic → schema table.

A breaking change is a new topic (``usage.v2``), never an edit in place: consumers replay old topics.
Every schema has example payloads under ``examples/<topic>/`` that tests validate and round-trip.
"""

from __future__ import annotations

from services.common.events.base import Event
from services.common.events.catalog import CatalogEventV1
from services.common.events.jobs import JobEventV1
from services.common.events.keys import KeyEventV1
from services.common.events.requests import RequestEventV1
from services.common.events.usage import UsageEventV1

# The one place a topic is tied to its schema (no registration magic).
SCHEMAS: dict[str, type[Event]] = {
    "requests.v1": RequestEventV1,
    "usage.v1": UsageEventV1,
    "keys.v1": KeyEventV1,
    "catalog.v1": CatalogEventV1,
    "jobs.v1": JobEventV1,
}

__all__ = [
    "SCHEMAS",
    "CatalogEventV1",
    "Event",
    "JobEventV1",
    "KeyEventV1",
    "RequestEventV1",
    "UsageEventV1",
]
