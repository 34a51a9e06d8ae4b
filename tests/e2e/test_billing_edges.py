"""Stripe end to end, on three edges with billing running: localstripe posts its own signed events to
the edge's public ``/v1/webhooks/stripe``; an expired (canceled) subscription's key is refused by
every edge within 2 s of billing applying it (promise 5, promise 8), and a new paid subscription
restores it."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import stripe

from infra.stack.platform import Platform
from tests.e2e.edges import Edges, auth, billing_fixture, edges_fixture, more_edges_fixture  # noqa: F401 - module fixtures

PROPAGATION_SECONDS = 2.0


async def _hold_applied(platform: Platform, account_id: str, held: bool, timeout: float = 15.0) -> None:
    """Wait until billing has committed the account's hold (or its lifting): the moment the 2 s start."""
    conn = await asyncpg.connect(platform.postgres.dsn("tollgate_billing"))
    try:
        deadline = time.monotonic() + timeout
        while ((await conn.fetchval("SELECT billing_hold FROM accounts WHERE id = $1", account_id)) is not None) != held:
            assert time.monotonic() < deadline, "billing never applied Stripe's event"
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def _every_edge_answers(edges: Edges, secret: str, status: int) -> float:
    started = time.monotonic()
    pending = set(edges.urls)
    async with httpx.AsyncClient(timeout=5) as client:
        while pending:
            for url in list(pending):
                if (await client.get(f"{url}/v1/models", headers=auth(secret))).status_code == status:
                    pending.discard(url)
            assert time.monotonic() - started < 10, f"edges never saw it: {pending}"
            await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_an_expired_subscription_suspends_the_key_on_every_edge_and_a_new_one_restores_it(
    edges: Edges, billing: None, platform: Platform
) -> None:
    async with httpx.AsyncClient(base_url=edges.url(0), headers=auth(platform.admin_key), timeout=30) as admin:
        account = (await admin.post("/v1/manage/accounts", json={"name": "subscriber"})).json()
        plan = (await admin.post("/v1/manage/plans", json={"name": "monthly"})).json()
        linked = await admin.put(f"/v1/manage/plans/{plan['id']}/stripe", json={"amount": "20.00", "interval": "month"})
        assert linked.status_code == 200, linked.text
        key = (await admin.post("/v1/manage/keys", json={"account_id": account["id"], "plan_id": plan["id"],
                                                          "name": "app"})).json()
        edges.secrets.append(key["key"])
        subscribe = {"plan_id": plan["id"], "payment_method": "pm_card_visa"}
        first = await admin.post(f"/v1/manage/accounts/{account['id']}/subscription", json=subscribe)
        assert first.status_code == 201 and first.json()["status"] == "active", first.text
        await _every_edge_answers(edges, key["key"], 200)

        # the subscription ends at Stripe (not through us): only Stripe's signed webhook tells billing
        client = stripe.StripeClient(platform.localstripe.api_key, base_addresses={"api": platform.localstripe.url})
        await asyncio.to_thread(client.v1.subscriptions.cancel, first.json()["id"])
        await _hold_applied(platform, account["id"], held=True)
        assert await _every_edge_answers(edges, key["key"], 403) < PROPAGATION_SECONDS

        second = await admin.post(f"/v1/manage/accounts/{account['id']}/subscription", json=subscribe)
        assert second.status_code == 201 and second.json()["billing_hold"] is None, second.text
        assert await _every_edge_answers(edges, key["key"], 200) < PROPAGATION_SECONDS


async def test_the_public_webhook_refuses_an_unsigned_event(edges: Edges, billing: None) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for url in edges.urls:
            reply = await client.post(f"{url}/v1/webhooks/stripe", content=b'{"id": "evt_1", "type": "x"}',
                                      headers={"stripe-signature": "t=1,v1=00"})
            assert reply.status_code == 400 and reply.json()["received"] is False
