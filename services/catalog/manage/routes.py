"""The one route table of the catalog's management API: method + path template → handler, with the
models that validate the request and describe the answer (the OpenAPI document is generated from this
table, so it cannot drift from what is served).

Every path is under ``/v1/manage/models`` or ``/v1/manage/catalog``: the two prefixes the edge
forwards to the catalog. Model and alias ids may contain ``/`` (``meta-llama/Llama-3.1-8B-Instruct``,
as vLLM and OpenRouter name models), so their parameters are written ``{id*}`` and span as many path
segments as it takes; when two templates match, the one with more fixed segments wins
(``.../models/a/b/prices`` is the prices of ``a/b``; see ``services.common.manage.routing``). Model ids
that would be ambiguous that way are refused when a model is created (``models.RESERVED_SUFFIXES``).
"""

from __future__ import annotations

from collections.abc import Mapping

from services.catalog.manage import aliases, deployments, models, prices, review
from services.catalog.manage.context import Deps
from services.catalog.manage.openapi import document
from services.catalog.manage.views import (
    AliasList,
    AliasOut,
    AuditList,
    DeploymentList,
    DeploymentOut,
    ModelList,
    ModelOut,
    PendingList,
    PendingOut,
    PriceList,
    PriceOut,
    SyncRunList,
)
from services.catalog.manage.wire import (
    AliasPut,
    Approve,
    AuditQuery,
    DeploymentPut,
    ModelPatch,
    ModelPut,
    ModelQuery,
    Page,
    PendingQuery,
    PriceCreate,
    PriceQuery,
    Reject,
    SyncRun,
    SyncRunsQuery,
)
from services.catalog.sync.report import SyncReport
from services.common.manage import routing
from services.common.manage.context import Call, Reply
from services.common.manage.routing import OPENAPI_PATH, Route


async def _openapi(deps: Deps, call: Call) -> Reply:
    return Reply(200, document(ROUTES))


_M, _C = "/v1/manage/models", "/v1/manage/catalog"
_W = (400, 401, 403, 404, 409)  # writes
ROUTES: tuple[Route[Deps], ...] = (
    Route("GET", _M, models.list_models, "List the catalog's models (enabled ones, unless the operator "
          "asks for all)", ModelList, query=ModelQuery, errors=(400, 401, 403), tag="models"),
    Route("GET", _M + "/{id*}", models.get_model,
          "Get a model with its price in force, aliases and (operator only) deployments", ModelOut,
          tag="models"),
    Route("PUT", _M + "/{id*}", models.put_model, "Create or replace a model (operator only)", ModelOut,
          body=ModelPut, also=(201,), errors=_W, tag="models"),
    Route("PATCH", _M + "/{id*}", models.patch_model, "Change a model: deprecation (deprecated_at, "
          "sunset_at, replacement), enabled, details (operator only)", ModelOut, body=ModelPatch, errors=_W,
          tag="models"),
    Route("GET", _M + "/{id*}/prices", prices.list_prices,
          "List a model's price versions and the one in force", PriceList, query=PriceQuery, tag="prices"),
    Route("POST", _M + "/{id*}/prices", prices.create_price, "Add a price version, in force from "
          "effective_from (operator only)", PriceOut, body=PriceCreate, status=201, errors=_W, tag="prices"),
    Route("GET", _M + "/{id*}/deployments", deployments.list_deployments, "List a model's deployments "
          "(operator only)", DeploymentList, errors=(400, 401, 403, 404), tag="deployments"),
    Route("PUT", _M + "/{id*}/deployments/{deployment_id}", deployments.put_deployment,
          "Create or replace a deployment of a model (operator only)", DeploymentOut, body=DeploymentPut,
          also=(201,), errors=_W, tag="deployments"),
    Route("DELETE", _M + "/{id*}/deployments/{deployment_id}", deployments.delete_deployment,
          "Remove a deployment (operator only)", DeploymentOut, errors=(400, 401, 403, 404),
          tag="deployments"),
    Route("GET", _C + "/aliases", aliases.list_aliases, "List aliases", AliasList, query=Page, tag="aliases"),
    Route("GET", _C + "/aliases/{alias*}", aliases.get_alias, "Get an alias", AliasOut, tag="aliases"),
    Route("PUT", _C + "/aliases/{alias*}", aliases.put_alias, "Create or re-point an alias (operator only)",
          AliasOut, body=AliasPut, also=(201,), errors=_W, tag="aliases"),
    Route("DELETE", _C + "/aliases/{alias*}", aliases.delete_alias, "Remove an alias (operator only)",
          AliasOut, errors=(400, 401, 403, 404), tag="aliases"),
    Route("POST", _C + "/sync", review.sync, "Run a configured sync source now (operator only)", SyncReport,
          body=SyncRun, errors=(400, 401, 403), tag="sync"),
    Route("GET", _C + "/sync", review.list_sync_runs, "Recent sync runs and their reports (operator only)",
          SyncRunList, query=SyncRunsQuery, errors=(400, 401, 403), tag="sync"),
    Route("GET", _C + "/pending", review.list_pending, "Price changes held for review (operator only)",
          PendingList, query=PendingQuery, errors=(400, 401, 403), tag="review"),
    Route("POST", _C + "/pending/{id}/approve", review.approve, "Approve a held change: it becomes a new "
          "price version (operator only)", PendingOut, body=Approve, errors=_W, tag="review"),
    Route("POST", _C + "/pending/{id}/reject", review.reject, "Reject a held change (operator only)",
          PendingOut, body=Reject, errors=_W, tag="review"),
    Route("GET", _C + "/audit", review.list_audit, "Every applied change, newest first (operator only)",
          AuditList, query=AuditQuery, errors=(400, 401, 403), tag="audit"),
    Route("GET", OPENAPI_PATH, _openapi, "The catalog's part of the OpenAPI 3.1 document (public)", None,
          errors=(), tag="meta", public=True),
)


def match(method: str, path: str) -> tuple[Route[Deps], Mapping[str, str]]:
    """The route for this request, with its path parameters; 404 / 405 otherwise."""
    return routing.match(ROUTES, method, path)
