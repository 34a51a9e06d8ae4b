"""Stripe through the management API: top-ups, a plan's Stripe Plan, subscriptions, reconciliation.

Handlers stay thin: tenancy and validation here, Stripe calls through ``deps.stripe`` (503 "Stripe is
not configured" without an API key), state changes through the same functions the webhooks use.
A top-up answers with the PaymentIntent only: credit is granted by its verified
``payment_intent.succeeded`` webhook (or reconciliation), never by this request, so a client cannot
credit itself by claiming a payment. Stripe calls are made outside database transactions, so a slow
Stripe never holds a row lock.
"""

from __future__ import annotations

import uuid

import structlog

from services.billing.db import Conn
from services.billing.manage import store as manage_store
from services.billing.manage.context import Deps
from services.billing.manage.stripe_wire import (
    MICROS_PER_CENT,
    PlanStripeLink,
    PlanStripeView,
    SubscriptionCreate,
    SubscriptionView,
    TopupCreate,
    topup_view,
)
from services.billing.manage.tenancy import (
    admin_only,
    not_found,
    plan_fits_account,
    require_account,
    sees_plan,
)
from services.billing.stripe import store
from services.billing.stripe.client import StripeGateway
from services.billing.stripe.holds import hold_of
from services.billing.stripe.reconcile import reconcile
from services.billing.stripe.subscriptions import TERMINAL, apply_subscription
from services.common.errors import Conflict, InvalidRequest, NotFound
from services.common.manage.context import Call, Caller, Reply

log = structlog.get_logger(__name__)


def _idempotency(kind: str, call: Call) -> str:
    """Stripe's idempotency key: a retried request (same request id) never creates a second object."""
    return f"tollgate-{kind}-{call.request_id or uuid.uuid4().hex}"


async def _visible_account(deps: Deps, caller: Caller, account_id: str) -> str:
    """The account's name, if the caller sees it (404 otherwise)."""
    async with deps.pool.acquire() as conn:
        row = await manage_store.get_account(conn, account_id)
        row = await require_account(conn, caller, row, account_id)
    return str(row["name"])


async def _customer(deps: Deps, gateway: StripeGateway, account_id: str, name: str) -> str:
    """The account's Stripe Customer, created on first use (a concurrent creator's id wins)."""
    async with deps.pool.acquire() as conn:
        existing = await store.customer_of(conn, account_id)
    if existing is not None:
        return existing
    created = await gateway.create_customer(account_id, name)
    async with deps.pool.acquire() as conn:
        kept = await conn.fetchval(
            "UPDATE accounts SET stripe_customer_id = coalesce(stripe_customer_id, $2) WHERE id = $1"
            " RETURNING stripe_customer_id", account_id, created["id"],
        )
    return str(kept)


async def create_topup(deps: Deps, call: Call) -> Reply:
    gateway = deps.stripe.require()
    body, account_id = call.body_as(TopupCreate), call.params["id"]
    name = await _visible_account(deps, call.caller, account_id)
    customer = await _customer(deps, gateway, account_id, name)
    pi = await gateway.create_payment_intent(
        customer, body.cents,
        {"account_id": account_id, "tollgate_kind": "topup", "tollgate_request_id": call.request_id},
        body.payment_method, _idempotency("topup", call),
    )
    async with deps.pool.acquire() as conn:
        await store.insert_payment_intent(conn, str(pi["id"]), account_id, body.cents,
                                          deps.stripe.config.currency, str(pi["status"]), call.request_id)
    log.info("topup_created", account_id=account_id, payment_intent=pi["id"], status=pi["status"],
             amount_micros=body.cents * MICROS_PER_CENT, by=call.caller.audit, request_id=call.request_id)
    return Reply(201, topup_view(pi, account_id))


async def link_plan(deps: Deps, call: Call) -> Reply:
    admin_only(call.caller, "link plans to Stripe")
    gateway = deps.stripe.require()
    body, plan_id = call.body_as(PlanStripeLink), call.params["id"]
    async with deps.pool.acquire() as conn:
        plan = await manage_store.get_plan(conn, plan_id)
    if plan is None:
        raise not_found("plan", plan_id)
    if body.stripe_plan_id is not None:
        stripe_plan = await gateway.retrieve_plan(body.stripe_plan_id)
    else:
        assert body.amount is not None and body.interval is not None
        cents = body.amount // MICROS_PER_CENT
        stripe_plan = await gateway.create_plan(str(plan["name"]), cents, body.interval)
    async with deps.pool.acquire() as conn:
        await store.link_plan(conn, plan_id, str(stripe_plan["id"]))
    log.info("plan_linked_to_stripe", plan_id=plan_id, stripe_plan=stripe_plan["id"], by=call.caller.audit,
             request_id=call.request_id)
    return Reply(200, PlanStripeView(plan_id=plan_id, stripe_plan_id=str(stripe_plan["id"])))


async def _view(conn: Conn, sub_id: str) -> SubscriptionView:
    row = await store.get_subscription(conn, sub_id)
    assert row is not None
    return SubscriptionView(
        id=row["id"], account_id=row["account_id"], plan_id=row["plan_id"],
        stripe_plan_id=row["stripe_plan_id"],
        status=row["status"], current_period_end=row["current_period_end"],
        cancel_at_period_end=row["cancel_at_period_end"], billing_hold=await hold_of(conn, row["account_id"]),
        synced_at=row["synced_at"],
    )


async def _current(conn: Conn, account_id: str) -> str | None:
    """The account's newest subscription that is not over, else its newest one."""
    rows = await store.subscriptions_of(conn, account_id)
    live = [r for r in rows if r["status"] not in TERMINAL]
    chosen = live or rows
    return str(chosen[0]["id"]) if chosen else None


async def create_subscription(deps: Deps, call: Call) -> Reply:
    gateway = deps.stripe.require()
    body, account_id = call.body_as(SubscriptionCreate), call.params["id"]
    name = await _visible_account(deps, call.caller, account_id)
    async with deps.pool.acquire() as conn:
        plan = await manage_store.get_plan(conn, body.plan_id)
        if plan is None or not await sees_plan(conn, call.caller, plan["account_id"]) or not (
            await plan_fits_account(conn, plan["account_id"], account_id)
        ):
            raise not_found("plan", body.plan_id, "plan_id")
        stripe_plan_id = await conn.fetchval("SELECT stripe_plan_id FROM plans WHERE id = $1", body.plan_id)
        live = [r for r in await store.subscriptions_of(conn, account_id) if r["status"] not in TERMINAL]
    if stripe_plan_id is None:
        raise InvalidRequest("This plan is not linked to a Stripe Plan (PUT /v1/manage/plans/{id}/stripe).",
                             param="plan_id", code="plan_not_linked")
    if live:
        raise Conflict(f"The account already has subscription '{live[0]['id']}' ({live[0]['status']}); "
                       "cancel it first.", code="subscription_exists")
    customer = await _customer(deps, gateway, account_id, name)
    if body.payment_method is not None:
        await gateway.set_default_payment_method(customer, body.payment_method)
    sub = await gateway.create_subscription(
        customer, str(stripe_plan_id), {"account_id": account_id, "plan_id": body.plan_id},
        _idempotency("subscription", call),
    )
    async with deps.pool.acquire() as conn, conn.transaction():
        applied = await apply_subscription(conn, sub, deps.stripe.config.past_due_holds)
        view = await _view(conn, str(sub["id"]))
    if applied.keys_touched:
        await deps.outbox.flush(deps.flush_timeout)
    log.info("subscription_created", account_id=account_id, subscription=sub["id"], status=sub["status"],
             by=call.caller.audit, request_id=call.request_id)
    return Reply(201, view)


async def _current_or_404(conn: Conn, account_id: str) -> str:
    sub_id = await _current(conn, account_id)
    if sub_id is None:
        raise NotFound(f"Account '{account_id}' has no subscription.", code="subscription_not_found")
    return sub_id


async def get_subscription(deps: Deps, call: Call) -> Reply:
    account_id = call.params["id"]
    await _visible_account(deps, call.caller, account_id)
    async with deps.pool.acquire() as conn:
        return Reply(200, await _view(conn, await _current_or_404(conn, account_id)))


async def cancel_subscription(deps: Deps, call: Call) -> Reply:
    gateway = deps.stripe.require()
    account_id = call.params["id"]
    await _visible_account(deps, call.caller, account_id)
    async with deps.pool.acquire() as conn:
        sub_id = await _current_or_404(conn, account_id)
        row = await store.get_subscription(conn, sub_id)
    sub = await gateway.retrieve_subscription(sub_id) if row is not None and row["status"] in TERMINAL \
        else await gateway.cancel_subscription(sub_id)
    async with deps.pool.acquire() as conn, conn.transaction():
        applied = await apply_subscription(conn, sub, deps.stripe.config.past_due_holds)
        view = await _view(conn, sub_id)
    if applied.keys_touched:
        await deps.outbox.flush(deps.flush_timeout)
    log.info("subscription_canceled", account_id=account_id, subscription=sub_id, by=call.caller.audit,
             request_id=call.request_id)
    return Reply(200, view)


async def run_reconcile(deps: Deps, call: Call) -> Reply:
    admin_only(call.caller, "run reconciliation")
    report = await reconcile(deps.stripe, deps.pool, deps.outbox, deps.flush_timeout)
    return Reply(200, report)
