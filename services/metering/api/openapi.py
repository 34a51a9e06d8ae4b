"""What metering's part of the OpenAPI 3.1 document says of itself; the document is generated from the
route table by ``services.common.manage.openapi``, and the edge merges its ``paths`` and ``components``
into the public document at ``/openapi.json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.common.manage import openapi
from services.common.manage.routing import Route
from services.metering.api.context import Deps

DESCRIPTION = """Usage and cost of a Tollgate platform, by account, key, model and period.

Authenticate with `Authorization: Bearer <key>`: the operator's admin key (every account), or a key of
kind `management` (its own account only). Money is a decimal string of US dollars (`"0.001500"`), never
a JSON number. Errors are `{"error": {"message", "type", "param", "code"}}`."""
INFO = openapi.ApiInfo(
    title="Tollgate usage API",
    description=DESCRIPTION,
    auth="the admin key, or a management key (kind=management) of an account",
    statuses={
        400: "Invalid request (a bad time, group_by or breakdown; from >= to; too many buckets or rows)",
        401: "Missing or unknown key",
        404: "No such account, or not visible to the caller",
    },
    operation_prefix="metering_",
)


def document(routes: Sequence[Route[Deps]]) -> dict[str, Any]:
    return openapi.document(routes, INFO)
