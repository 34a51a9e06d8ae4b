"""Fixtures of the Stripe tests: the management API in-process with a real Stripe gateway pointed at
the session's localstripe, and events signed with Stripe's scheme the way Stripe signs them.

localstripe also posts its own signed events to the edge's webhook URL; no edge runs during these
tests, so those deliveries fail quietly there and every event here is delivered by the test itself.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from infra.stack.platform import Platform
from services.billing.manage.context import Deps
from services.billing.stripe import store
from services.billing.stripe.client import LIST_PAGE_SIZE, StripeBilling, StripeConfig, StripeGateway
from services.billing.stripe.webhooks import Delivery, deliver
from tests.billing.conftest import ADMIN, Manage

SECRET = "whsec_test_" + uuid.uuid4().hex


def sign(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header: ``t=<ts>,v1=HMAC-SHA256(secret, "<ts>.<payload>")``."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    return orjson.dumps({"id": event_id or f"evt_{uuid.uuid4().hex[:16]}", "object": "event",
                         "type": event_type, "created": int(time.time()), "data": {"object": obj}})


def stripe_of(platform: Platform, page_size: int = LIST_PAGE_SIZE, **config: Any) -> StripeBilling:
    cfg = StripeConfig(webhook_secret=SECRET, **config)
    gateway = StripeGateway(platform.localstripe.api_key, platform.localstripe.url, 10.0, cfg, page_size=page_size)
    return StripeBilling(gateway, cfg)


def with_stripe(manage: Manage, stripe: StripeBilling) -> Manage:
    base = manage.deps
    return Manage(Deps(base.pool, base.outbox, base.key_hash_secret, base.flush_timeout, stripe=stripe), manage.pool)


@pytest.fixture(scope="module")
async def billing_api(manage: Manage, platform: Platform) -> AsyncIterator[Manage]:
    """``manage`` with Stripe configured (localstripe, this module's webhook secret)."""
    yield with_stripe(manage, stripe_of(platform))


@pytest.fixture(scope="module")
async def paged_api(manage: Manage, platform: Platform) -> AsyncIterator[Manage]:
    """``billing_api`` reading Stripe's lists 2 objects a page: a handful of objects then spans several
    pages, where Stripe's own pages of 100 would need 101 of them."""
    yield with_stripe(manage, stripe_of(platform, page_size=2))


async def send(api: Manage, payload: bytes, signature: str | None = None) -> Delivery:
    deps = api.deps
    return await deliver(deps.stripe, deps.pool, deps.outbox, deps.flush_timeout, payload,
                         sign(payload) if signature is None else signature)


async def new_account(api: Manage, name: str = "stripe-test") -> str:
    return str((await api.ok(ADMIN, "POST", "/v1/manage/accounts", {"name": name, "billing": "prepaid"}))["id"])


async def new_key(api: Manage, account_id: str) -> str:
    plan = await api.ok(ADMIN, "POST", "/v1/manage/plans", {"name": "basic"})
    key = await api.ok(ADMIN, "POST", "/v1/manage/keys", {"account_id": account_id, "plan_id": plan["id"], "name": "k"})
    return str(key["id"])


async def linked_plan(api: Manage, amount: str = "20.00") -> str:
    plan = await api.ok(ADMIN, "POST", "/v1/manage/plans", {"name": "pro"})
    await api.ok(ADMIN, "PUT", f"/v1/manage/plans/{plan['id']}/stripe", {"amount": amount, "interval": "month"})
    return str(plan["id"])


async def topups_posted(conn: asyncpg.Connection, pi_id: str) -> list[int]:
    """The ledger entries a PaymentIntent produced (amounts, micro-USD)."""
    rows = await conn.fetch("SELECT amount_micros FROM ledger_transactions WHERE idempotency_key = $1",
                            f"topup:{pi_id}")
    return [r["amount_micros"] for r in rows]


async def subscribed_in_stripe(api: Manage, count: int) -> tuple[str, str, list[str]]:
    """An account whose Stripe Customer holds ``count`` active subscriptions made in Stripe itself (as
    from Stripe's dashboard): billing has no row for any of them, only listing Stripe finds them.
    Returns the account, its customer and the subscriptions' ids."""
    account_id = await new_account(api, "stripe-paged")
    plan_id = await linked_plan(api)
    gateway = api.deps.stripe.require()
    customer = str((await gateway.create_customer(account_id, "stripe-paged"))["id"])
    await gateway.set_default_payment_method(customer, "pm_card_visa")
    async with api.pool.acquire() as conn:
        await store.set_customer(conn, account_id, customer)
        stripe_plan_id = str(await conn.fetchval("SELECT stripe_plan_id FROM plans WHERE id = $1", plan_id))
    subs = [await gateway.create_subscription(customer, stripe_plan_id, {"account_id": account_id, "plan_id": plan_id},
                                              f"test-sub-{uuid.uuid4().hex}") for _ in range(count)]
    return account_id, customer, [str(s["id"]) for s in subs]
