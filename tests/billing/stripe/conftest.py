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
from services.billing.stripe.client import StripeBilling, StripeConfig, StripeGateway
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


def stripe_of(platform: Platform, **config: Any) -> StripeBilling:
    cfg = StripeConfig(webhook_secret=SECRET, **config)
    return StripeBilling(StripeGateway(platform.localstripe.api_key, platform.localstripe.url, 10.0, cfg), cfg)


@pytest.fixture(scope="module")
async def billing_api(manage: Manage, platform: Platform) -> AsyncIterator[Manage]:
    """``manage`` with Stripe configured (localstripe, this module's webhook secret)."""
    base = manage.deps
    deps = Deps(base.pool, base.outbox, base.key_hash_secret, base.flush_timeout, stripe=stripe_of(platform))
    yield Manage(deps, manage.pool)


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
