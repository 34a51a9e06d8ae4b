"""The one route table of the management API: method + path template → handler, with the models that
validate the request and describe the answer (the OpenAPI document is generated from this table, so
it cannot drift from what is served). What a route is and how a request finds one is
``services.common.manage.routing``.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.billing.manage import accounts, credits, keys, payments, plans
from services.billing.manage.context import Deps
from services.billing.manage.ledger_wire import (
    BalanceView,
    CreditCreate,
    LedgerQuery,
    TransactionList,
    TransactionView,
)
from services.billing.manage.openapi import document
from services.billing.manage.stripe_wire import (
    PlanStripeLink,
    PlanStripeView,
    SubscriptionCreate,
    SubscriptionView,
    TopupCreate,
    TopupView,
)
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
from services.billing.statements import handlers as statements
from services.billing.statements.views import CloseRun, StatementList, StatementView
from services.billing.statements.wire import StatementQuery
from services.billing.stripe.reconcile import ReconcileReport
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
    # Stripe (services/billing/manage/payments.py): 503 "Stripe is not configured" without an API key
    Route("POST", _A + "/{id}/topups", payments.create_topup,
          "Start a Stripe top-up (a PaymentIntent); credit follows its verified payment_intent.succeeded "
          "webhook", TopupView, body=TopupCreate, status=201, errors=(400, 401, 404, 502, 503),
          tag="billing"),
    Route("PUT", _P + "/{id}/stripe", payments.link_plan,
          "Link a plan to a Stripe Plan, or create one (operator only)", PlanStripeView, body=PlanStripeLink,
          errors=(400, 401, 403, 404, 502, 503), tag="billing"),
    Route("POST", _A + "/{id}/subscription", payments.create_subscription,
          "Subscribe the account to a plan linked to Stripe", SubscriptionView, body=SubscriptionCreate,
          status=201, errors=(400, 401, 404, 409, 502, 503), tag="billing"),
    Route("GET", _A + "/{id}/subscription", payments.get_subscription, "The account's subscription",
          SubscriptionView, errors=(401, 404), tag="billing"),
    Route("DELETE", _A + "/{id}/subscription", payments.cancel_subscription,
          "Cancel the account's subscription now (its keys are suspended)", SubscriptionView,
          errors=(401, 404, 502, 503), tag="billing"),
    Route("POST", "/v1/manage/billing/reconcile", payments.run_reconcile,
          "Reconcile with Stripe now (operator only) and report what was repaired", ReconcileReport,
          errors=(401, 403, 502, 503), tag="billing"),
    # The credit ledger (services/billing/manage/credits.py)
    Route("GET", _A + "/{id}/balance", credits.get_balance,
          "The account's balance (the ledger's sum) and, for prepaid, what is held and available",
          BalanceView, tag="ledger"),
    Route("POST", _A + "/{id}/credits", credits.post_credit,
          "Grant credit or post an adjustment (operator only; idempotent with idempotency_key)",
          TransactionView, body=CreditCreate, status=201, errors=(400, 401, 403, 404, 409), tag="ledger"),
    Route("GET", _A + "/{id}/ledger", credits.list_ledger, "The account's ledger transactions, oldest first",
          TransactionList, query=LedgerQuery, errors=(400, 401, 404), tag="ledger"),
    Route("GET", _A + "/{id}/statements", statements.list_statements,
          "List an account's monthly statements: the current month, then every earlier one", StatementList,
          errors=(400, 401, 404, 503), tag="statements"),
    Route("GET", _A + "/{id}/statements/{period}", statements.get_statement,
          "One statement: a month (\"2026-11\") or a range of whole days (\"2026-11-03..2026-11-09\")",
          StatementView, query=StatementQuery, errors=(400, 401, 404, 503), tag="statements",
          description=statements.DESCRIPTION),
    Route("POST", "/v1/manage/billing/close", statements.close_statements,
          "Close every finished month not yet closed, now (operator only; the nightly job does the same)",
          CloseRun, errors=(401, 403, 503), tag="statements"),
    Route("GET", OPENAPI_PATH, _openapi, "This API's OpenAPI 3.1 document (public)", None, errors=(),
          tag="meta", public=True),
)


def match(method: str, path: str) -> tuple[Route[Deps], Mapping[str, str]]:
    """The route for this request, with its path parameters; 404 / 405 otherwise."""
    return routing.match(ROUTES, method, path)
