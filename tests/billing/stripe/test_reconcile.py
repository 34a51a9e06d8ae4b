"""Reconciliation: what a missed webhook left undone is repaired from Stripe's own state, once."""

from __future__ import annotations

from typing import Any

from services.billing.stripe import store
from tests.billing.conftest import ADMIN, Manage, event_after
from tests.billing.stripe.conftest import (
    event,
    linked_plan,
    new_account,
    new_key,
    send,
    subscribed_in_stripe,
    topups_posted,
)
from tests.kafka_helpers import eventually


async def test_a_webhook_never_delivered_is_repaired_by_reconciliation(billing_api: Manage) -> None:
    account_id = await new_account(billing_api)
    topup = await billing_api.ok(ADMIN, "POST", f"/v1/manage/accounts/{account_id}/topups",
                                 {"amount": "7.50", "payment_method": "pm_card_visa"})
    pending = await billing_api.ok(ADMIN, "POST", f"/v1/manage/accounts/{account_id}/topups", {"amount": "3.00"})
    async with billing_api.pool.acquire() as conn:
        assert await topups_posted(conn, topup["id"]) == []  # the webhook never came

    report = await billing_api.ok(ADMIN, "POST", "/v1/manage/billing/reconcile")
    assert topup["id"] in report["topups_credited"] and pending["id"] not in report["topups_credited"]
    async with billing_api.pool.acquire() as conn:
        assert await topups_posted(conn, topup["id"]) == [7_500_000]
        assert await topups_posted(conn, pending["id"]) == []  # not paid: nothing

    again = await billing_api.ok(ADMIN, "POST", "/v1/manage/billing/reconcile")
    assert topup["id"] not in again["topups_credited"]
    pi = await billing_api.deps.stripe.require().retrieve_payment_intent(topup["id"])
    late = await send(billing_api, event("payment_intent.succeeded", pi))  # the webhook, finally
    assert (late.status, late.message) == (200, "already_credited")
    async with billing_api.pool.acquire() as conn:
        assert await topups_posted(conn, topup["id"]) == [7_500_000]


async def test_a_missed_cancellation_is_applied_and_suspends_the_keys(billing_api: Manage, keys_seen: Any) -> None:
    account_id = await new_account(billing_api)
    key_id = await new_key(billing_api, account_id)
    plan_id = await linked_plan(billing_api)
    sub = await billing_api.ok(ADMIN, "POST", f"/v1/manage/accounts/{account_id}/subscription",
                               {"plan_id": plan_id, "payment_method": "pm_card_visa"})
    async def on_paid_plan() -> bool:  # subscribing puts the account's keys on the plan it pays for
        seen = keys_seen.get(key_id)
        return seen is not None and seen.plan_id == plan_id

    await eventually(on_paid_plan, 10, what="the key moved onto the subscribed plan")
    before = await event_after(keys_seen, key_id)
    assert before.account_status == "active"
    await billing_api.deps.stripe.require().cancel_subscription(sub["id"])  # its webhook is lost

    report = await billing_api.ok(ADMIN, "POST", "/v1/manage/billing/reconcile")
    assert sub["id"] in report["subscriptions_repaired"] and account_id in report["holds_changed"]
    shown = await billing_api.ok(ADMIN, "GET", f"/v1/manage/accounts/{account_id}/subscription")
    assert shown["status"] == "canceled" and shown["billing_hold"] == "subscription_canceled"
    assert (await event_after(keys_seen, key_id, before.version)).account_status == "suspended"


async def test_subscriptions_past_the_first_page_are_reconciled(paged_api: Manage) -> None:
    account_id, _, created = await subscribed_in_stripe(paged_api, 3)  # pages of 2: the third is on page 2
    async with paged_api.pool.acquire() as conn:
        assert await store.subscriptions_of(conn, account_id) == []  # billing knows none of them

    report = await paged_api.ok(ADMIN, "POST", "/v1/manage/billing/reconcile")
    assert set(created) <= set(report["subscriptions_repaired"])
    async with paged_api.pool.acquire() as conn:
        rows = await store.subscriptions_of(conn, account_id)
    assert sorted(r["id"] for r in rows) == sorted(created)
    assert {r["status"] for r in rows} == {"active"}


async def test_only_the_operator_reconciles(billing_api: Manage) -> None:
    from services.common.manage.context import Caller

    account_id = await new_account(billing_api)
    status, answer = await billing_api.call(Caller(account_id=account_id), "POST", "/v1/manage/billing/reconcile")
    assert status == 403 and answer["error"]["code"] == "admin_only"
