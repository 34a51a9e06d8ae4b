"""Top-ups through the management API: amounts Stripe cannot charge are refused before Stripe is
called, a top-up creates a PaymentIntent but no credit, and without Stripe the route says so."""

from __future__ import annotations

import pytest

from services.billing.manage.context import Deps
from tests.billing.conftest import ADMIN, Manage
from tests.billing.stripe.conftest import new_account, topups_posted


@pytest.mark.parametrize(("amount", "says"), [
    ("10.001", "whole number of cents"),
    ("0.49", "at least \"0.50\""),
    ("1000000.00", "at most"),
    (10, "decimal string"),
    (10.5, "decimal string"),
    ("-5.00", "amount"),
    ("ten", "amount"),
])
async def test_amounts_stripe_cannot_charge_are_refused(billing_api: Manage, amount: object, says: str) -> None:
    account_id = await new_account(billing_api)
    status, answer = await billing_api.call(ADMIN, "POST", f"/v1/manage/accounts/{account_id}/topups",
                                            {"amount": amount})
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error" and says in answer["error"]["message"]
    async with billing_api.pool.acquire() as conn:  # refused before Stripe: no customer, no intent
        assert await conn.fetchval("SELECT stripe_customer_id FROM accounts WHERE id = $1", account_id) is None
        assert await conn.fetchval("SELECT count(*) FROM stripe_payment_intents WHERE account_id = $1",
                                   account_id) == 0


async def test_unknown_fields_and_payment_methods_are_refused(billing_api: Manage) -> None:
    account_id = await new_account(billing_api)
    path = f"/v1/manage/accounts/{account_id}/topups"
    assert (await billing_api.call(ADMIN, "POST", path, {"amount": "5.00", "credit_now": True}))[0] == 400
    assert (await billing_api.call(ADMIN, "POST", path, {"amount": "5.00", "payment_method": "x; drop"}))[0] == 400
    assert (await billing_api.call(ADMIN, "POST", "/v1/manage/accounts/acct_nope/topups", {"amount": "5.00"}))[0] == 404


async def test_a_topup_creates_a_payment_intent_and_no_credit(billing_api: Manage) -> None:
    account_id = await new_account(billing_api)
    topup = await billing_api.ok(ADMIN, "POST", f"/v1/manage/accounts/{account_id}/topups", {"amount": "12.34"})
    assert topup["id"].startswith("pi_") and topup["amount"] == "12.340000" and topup["currency"] == "USD"
    assert topup["status"] == "requires_payment_method" and topup["client_secret"]
    async with billing_api.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM stripe_payment_intents WHERE id = $1", topup["id"])
        assert row["account_id"] == account_id and row["amount_cents"] == 1234 and not row["credited"]
        assert await topups_posted(conn, topup["id"]) == []  # credit comes only from Stripe's webhook
        customer = await conn.fetchval("SELECT stripe_customer_id FROM accounts WHERE id = $1", account_id)
    again = await billing_api.ok(ADMIN, "POST", f"/v1/manage/accounts/{account_id}/topups",
                                 {"amount": "1.00", "payment_method": "pm_card_visa"})
    assert again["status"] == "succeeded"
    async with billing_api.pool.acquire() as conn:  # one customer per account, reused
        assert await conn.fetchval("SELECT stripe_customer_id FROM accounts WHERE id = $1", account_id) == customer
        assert await topups_posted(conn, again["id"]) == []


async def test_without_stripe_configured_the_routes_say_so(manage: Manage) -> None:
    plain = Manage(Deps(manage.deps.pool, manage.deps.outbox, manage.deps.key_hash_secret), manage.pool)
    account_id = await new_account(plain)
    status, answer = await plain.call(ADMIN, "POST", f"/v1/manage/accounts/{account_id}/topups", {"amount": "5.00"})
    assert status == 503 and answer["error"]["code"] == "stripe_not_configured"
    assert "not configured" in answer["error"]["message"]
    assert (await plain.call(ADMIN, "POST", "/v1/manage/billing/reconcile"))[0] == 503
    assert (await plain.call(ADMIN, "GET", f"/v1/manage/accounts/{account_id}"))[0] == 200  # the rest works
