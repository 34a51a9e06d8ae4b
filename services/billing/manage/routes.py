"""The one route table of the management API: method + path template → handler, with the models that
validate the request and describe the answer (the OpenAPI document is generated from this table, so
it cannot drift from what is served). What a route is and how a request finds one is
``services.common.manage.routing``.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.billing.manage import accounts, keys, plans
from services.billing.manage.context import Deps
from services.billing.manage.openapi import document
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
    PlanCreate,
    PlanPatch,
    PlanQuery,
)
from services.common.manage import routing
from services.common.manage.context import Call, Reply
from services.common.manage.routing import OPENAPI_PATH, Route


async def _openapi(deps: Deps, call: Call) -> Reply:
    return Reply(200, document(ROUTES))


_A, _P, _K = "/v1/manage/accounts", "/v1/manage/plans", "/v1/manage/keys"
ROUTES: tuple[Route[Deps], ...] = (
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


def match(method: str, path: str) -> tuple[Route[Deps], Mapping[str, str]]:
    """The route for this request, with its path parameters; 404 / 405 otherwise."""
    return routing.match(ROUTES, method, path)
