"""The one route table of the management API: method + path template → handler, with the models that
validate the request and describe the answer (the OpenAPI document is generated from this table, so
it cannot drift from what is served).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from services.billing.manage import accounts, keys, plans
from services.billing.manage.context import Call, Deps, Reply
from services.billing.manage.views import (
    AccountList,
    AccountView,
    KeyList,
    KeyView,
    KeyWithSecret,
    PlanList,
    PlanView,
)
from services.billing.manage.wire import (
    AccountCreate,
    AccountPatch,
    AccountQuery,
    KeyCreate,
    KeyPatch,
    KeyQuery,
    KeyRotate,
    NoQuery,
    PlanCreate,
    PlanPatch,
    PlanQuery,
)
from services.common.errors import InvalidRequest, NotFound

Handler = Callable[[Deps, Call], Awaitable[Reply]]
OPENAPI_PATH = "/openapi.json"


class MethodNotAllowed(InvalidRequest):
    http_status = 405
    default_code = "method_not_allowed"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # template: "{id}" segments are parameters
    handler: Handler
    summary: str
    response: type[BaseModel] | None  # None: a free-form JSON object (the OpenAPI document)
    body: type[BaseModel] | None = None
    query: type[BaseModel] = NoQuery
    status: int = 200
    errors: tuple[int, ...] = (400, 401, 404)
    tag: str = ""
    public: bool = False  # answered without a caller (the edge sends none)


async def _openapi(deps: Deps, call: Call) -> Reply:
    from services.billing.manage.openapi import document  # the document is built from ROUTES

    return Reply(200, document(ROUTES))


_A, _P, _K = "/v1/manage/accounts", "/v1/manage/plans", "/v1/manage/keys"
ROUTES: tuple[Route, ...] = (
    Route("POST", _A, accounts.create_account, "Create an account (a sub-account when parent_id is set)",
          AccountView, body=AccountCreate, status=201, errors=(400, 401, 403, 404), tag="accounts"),
    Route("GET", _A, accounts.list_accounts, "List the accounts the caller sees", AccountList,
          query=AccountQuery, errors=(400, 401), tag="accounts"),
    Route("GET", _A + "/{id}", accounts.get_account, "Get an account", AccountView, tag="accounts"),
    Route("PATCH", _A + "/{id}", accounts.patch_account,
          "Rename, suspend/reactivate, or change the billing mode of an account", AccountView,
          body=AccountPatch, errors=(400, 401, 403, 404), tag="accounts"),
    Route("POST", _P, plans.create_plan, "Create a plan (operator only)", PlanView, body=PlanCreate,
          status=201, errors=(400, 401, 403, 404), tag="plans"),
    Route("GET", _P, plans.list_plans, "List the plans the caller sees", PlanList, query=PlanQuery,
          errors=(400, 401), tag="plans"),
    Route("GET", _P + "/{id}", plans.get_plan, "Get a plan", PlanView, tag="plans"),
    Route("PATCH", _P + "/{id}", plans.patch_plan, "Change a plan (operator only); its keys follow",
          PlanView, body=PlanPatch, errors=(400, 401, 403, 404), tag="plans"),
    Route("POST", _K, keys.create_key, "Issue a key: the secret is in this answer only", KeyWithSecret,
          body=KeyCreate, status=201, errors=(400, 401, 403, 404), tag="keys"),
    Route("GET", _K, keys.list_keys, "List keys", KeyList, query=KeyQuery, tag="keys"),
    Route("GET", _K + "/{id}", keys.get_key, "Get a key (never its secret)", KeyView, tag="keys"),
    Route("PATCH", _K + "/{id}", keys.patch_key, "Rename, disable/enable, re-plan or re-limit a key",
          KeyView, body=KeyPatch, errors=(400, 401, 403, 404, 409), tag="keys"),
    Route("DELETE", _K + "/{id}", keys.revoke_key, "Revoke a key (final; idempotent)", KeyView, tag="keys"),
    Route("POST", _K + "/{id}/rotate", keys.rotate_key,
          "Issue a copy of a key with a new secret and revoke the old one, atomically", KeyWithSecret,
          body=KeyRotate, status=201, errors=(400, 401, 404, 409), tag="keys"),
    Route("GET", OPENAPI_PATH, _openapi, "This API's OpenAPI 3.1 document (public)", None, errors=(),
          tag="meta", public=True),
)


def _matches(template: str, path: str) -> dict[str, str] | None:
    want, got = template.split("/"), path.split("/")
    if len(want) != len(got):
        return None
    params: dict[str, str] = {}
    for w, g in zip(want, got, strict=True):
        if w.startswith("{") and w.endswith("}"):
            if not g:
                return None
            params[w[1:-1]] = g
        elif w != g:
            return None
    return params


def match(method: str, path: str) -> tuple[Route, Mapping[str, str]]:
    """The route for this request, with its path parameters; 404 / 405 otherwise."""
    allowed: list[str] = []
    for route in ROUTES:
        params = _matches(route.path, path)
        if params is None:
            continue
        if route.method == method:
            return route, params
        allowed.append(route.method)
    if allowed:
        raise MethodNotAllowed(f"{method} is not allowed on {path[:200]}; allowed: {', '.join(allowed)}.")
    raise NotFound(f"Unknown request URL: {method} {path[:200]}.", code="unknown_url")


def as_json(body: BaseModel | Mapping[str, Any]) -> Any:
    return body.model_dump(mode="json") if isinstance(body, BaseModel) else body
