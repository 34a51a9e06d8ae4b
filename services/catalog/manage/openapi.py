"""What the catalog's part of the OpenAPI 3.1 document says of itself; the document is generated from
the route table by ``services.common.manage.openapi``. The edge merges its ``paths`` and
``components`` into the public document at ``/openapi.json`` (operationIds are prefixed ``catalog_`` so
they stay unique there)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.catalog.manage.context import Deps
from services.common.manage import openapi
from services.common.manage.routing import Route

DESCRIPTION = """Models, deployments, versioned prices, aliases and deprecations of a Tollgate platform,
the sync from provider feeds and its review queue.

Prices are decimal strings of US dollars per 1M tokens (`"2.50"`), never JSON numbers; each price is
an immutable version with an `effective_from`. Every change is published on catalog.v1 before the
answer (edges and routers see it within 2 s) and recorded in the audit trail."""
INFO = openapi.ApiInfo(
    title="Tollgate catalog management API",
    description=DESCRIPTION,
    auth="the admin key (every route), or a management key of an account (reads)",
    statuses={
        201: "Created",
        400: "Invalid request (nothing was changed)", 401: "Missing or unknown key",
        403: "Only the platform operator may do this", 404: "No such model, alias, deployment or change",
        409: "Conflicts with the catalog's state (an id taken, a price version that exists, a decided "
             "change)",
    },
    operation_prefix="catalog_",
)


def document(routes: Sequence[Route[Deps]]) -> dict[str, Any]:
    return openapi.document(routes, INFO)
