"""The one route table of the catalog's management API: method + path template → handler, with the
models that validate the request and describe the answer (the OpenAPI document is generated from this
table, so it cannot drift from what is served).

Every path is under ``/v1/manage/models`` or ``/v1/manage/catalog``: the two prefixes the edge
forwards to the catalog. Model and alias ids may contain ``/`` (``meta-llama/Llama-3.1-8B-Instruct``,
as vLLM and OpenRouter name models), so their parameters are written ``{id*}`` and span as many path
segments as it takes; when two templates match, the one with more fixed segments wins
(``.../models/a/b/prices`` is the prices of ``a/b``). Model ids that would be ambiguous that way are
refused when a model is created (``models.RESERVED_SUFFIXES``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from services.catalog.manage import aliases, deployments, models, prices, review
from services.catalog.manage.context import Call, Deps, Reply
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
    NoQuery,
    Page,
    PendingQuery,
    PriceCreate,
    PriceQuery,
    Reject,
    SyncRun,
    SyncRunsQuery,
)
from services.catalog.sync.report import SyncReport
from services.common.errors import InvalidRequest, NotFound

Handler = Callable[[Deps, Call], Awaitable[Reply]]
OPENAPI_PATH = "/openapi.json"


class MethodNotAllowed(InvalidRequest):
    http_status = 405
    default_code = "method_not_allowed"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # template: "{name}" is one path segment, "{name*}" one or more
    handler: Handler
    summary: str
    response: type[BaseModel] | None  # None: a free-form JSON object (the OpenAPI document)
    body: type[BaseModel] | None = None
    query: type[BaseModel] = NoQuery
    status: int = 200
    also: tuple[int, ...] = ()  # other success statuses with the same answer (PUT: 201 created)
    errors: tuple[int, ...] = (400, 401, 404)
    tag: str = ""
    public: bool = False  # answered without a caller (the edge sends none)


async def _openapi(deps: Deps, call: Call) -> Reply:
    from services.catalog.manage.openapi import document  # the document is built from ROUTES

    return Reply(200, document(ROUTES))


_M, _C = "/v1/manage/models", "/v1/manage/catalog"
_W = (400, 401, 403, 404, 409)  # writes
ROUTES: tuple[Route, ...] = (
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


def _matches(template: str, path: str) -> tuple[int, dict[str, str]] | None:
    """(number of fixed segments, parameters) when ``path`` fits ``template``."""
    want, got = template.split("/"), path.split("/")
    greedy = next((i for i, w in enumerate(want) if w.endswith("*}")), None)
    if greedy is None:
        if len(want) != len(got):
            return None
        pairs = list(zip(want, got, strict=True))
    else:
        tail = len(want) - greedy - 1
        if len(got) < len(want):
            return None
        middle = got[greedy:len(got) - tail]
        if not all(middle):
            return None
        pairs = [*zip(want[:greedy], got[:greedy], strict=True), (want[greedy], "/".join(middle)),
                 *zip(want[greedy + 1:], got[len(got) - tail:], strict=True)]
    params: dict[str, str] = {}
    fixed = 0
    for w, g in pairs:
        if w.startswith("{") and w.endswith("}"):
            if not g:
                return None
            params[w[1:-1].rstrip("*")] = g
        elif w != g:
            return None
        else:
            fixed += 1
    return fixed, params


def match(method: str, path: str) -> tuple[Route, Mapping[str, str]]:
    """The route for this request, with its path parameters; 404 / 405 otherwise."""
    found = [(m[0], route, m[1]) for route in ROUTES if (m := _matches(route.path, path)) is not None]
    if not found:
        raise NotFound(f"Unknown request URL: {method} {path[:200]}.", code="unknown_url")
    best = max(fixed for fixed, _, _ in found)
    candidates = [(route, params) for fixed, route, params in found if fixed == best]
    for route, params in candidates:
        if route.method == method:
            return route, params
    allowed = ", ".join(dict.fromkeys(route.method for route, _ in candidates))
    raise MethodNotAllowed(f"{method} is not allowed on {path[:200]}; allowed: {allowed}.")


def as_json(body: BaseModel | Mapping[str, Any]) -> Any:
    return body.model_dump(mode="json") if isinstance(body, BaseModel) else body
