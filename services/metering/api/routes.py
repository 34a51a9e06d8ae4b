"""The one route table of metering's management API: method + path → handler, with the models that
validate the query and describe the answer (the OpenAPI document is generated from this table, so it
cannot drift from what is served). The edge forwards ``/v1/manage/usage*`` here and merges this
service's ``/openapi.json`` paths into the public document.
"""

from __future__ import annotations

from services.common.manage.context import Call, Reply
from services.common.manage.routing import OPENAPI_PATH, Route
from services.metering.api.context import Deps
from services.metering.api.openapi import document
from services.metering.api.usage import get_usage
from services.metering.api.views import UsageView
from services.metering.api.wire import UsageQuery


async def _openapi(deps: Deps, call: Call) -> Reply:
    return Reply(200, document(ROUTES))


USAGE_DESCRIPTION = """Requests, tokens by kind and cost over a period [from, to), as one bucket
(`group_by=none`, the default) or a series of minute / hour / day buckets (UTC), optionally split by
account, key and/or model (`breakdown`). Every bucket of the period is listed, with no results when there
was no usage. Answered from per-minute/hour/day rollups. A management key sees its own account only:
naming another `account_id` answers 404."""

ROUTES: tuple[Route[Deps], ...] = (
    Route("GET", "/v1/manage/usage", get_usage, "Usage and cost per period, key, account and model",
          UsageView, query=UsageQuery, tag="usage", description=USAGE_DESCRIPTION),
    Route("GET", OPENAPI_PATH, _openapi, "This API's OpenAPI 3.1 document (public)", None, errors=(),
          tag="meta", public=True),
)
