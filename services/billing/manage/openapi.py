"""What billing's part of the OpenAPI 3.1 document says of itself; the document is generated from the
route table by ``services.common.manage.openapi``. The edge serves it as the base of the public
document at ``/openapi.json`` and merges the other services' parts into it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.billing.manage.context import Deps
from services.common.manage import openapi
from services.common.manage.routing import Route

DESCRIPTION = """Accounts, plans and API keys of a Tollgate platform.

Authenticate with `Authorization: Bearer <key>`: the operator's admin key (everything), or a key of
kind `management`, which acts on its own account and the accounts below it only. Money is a decimal
string of US dollars (`"20.00"`), never a JSON number. Errors are `{"error": {"message", "type",
"param", "code"}}`, and a request that fails changes nothing."""
INFO = openapi.ApiInfo(
    title="Tollgate management API",
    description=DESCRIPTION,
    auth="the admin key, or a management key (kind=management) of an account",
    statuses={
        400: "Invalid request (nothing was changed)", 401: "Missing or unknown key",
        403: "The caller may not do this", 404: "No such resource, or not visible to the caller",
        409: "Conflicts with the resource's state (e.g. the key is revoked)",
        502: "Stripe did not answer (retry)", 503: "A dependency is unavailable, or Stripe is not configured",
    },
)


def document(routes: Sequence[Route[Deps]]) -> dict[str, Any]:
    return openapi.document(routes, INFO)
