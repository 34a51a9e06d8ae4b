"""A prepaid account end to end: billing running (ledger, wallet mirror, charge consumer), three edges
admitting against the balance billing mirrors into Redis, usage flowing back over usage.v1.

The promise under test: a prepaid account never spends money it does not have, whatever the
concurrency and whichever edge serves — and once everything is charged, the ledger, the balance and
what the edges see agree to the micro-dollar.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import asyncpg
import httpx
import redis.asyncio as redis

from infra.stack.platform import Platform
from services.common import redis_keys
from tests.e2e.edges import Edges, auth, billing_fixture, edges_fixture, more_edges_fixture, redis_prefix  # noqa: F401 - module fixtures

REAL_COST = 2705  # the recorded answer: 86 input + 1920 cached input + 9 output tokens at gpt-4o's prices
BODY_PROMPT = "x" * 2100  # a byte bound that covers those 2006 prompt tokens: a worst case of $0.0054


async def _burst(edges: Edges, secret: str, model: str, n: int) -> list[httpx.Response]:
    body = {"model": model, "messages": [{"role": "user", "content": BODY_PROMPT}], "max_tokens": 9}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(
            client.post(f"{edges.url(i)}/v1/chat/completions", headers=auth(secret), json=body) for i in range(n)
        ))


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_a_prepaid_account_with_five_cents_never_goes_below_zero_under_100_concurrent_requests(
    edges: Edges, billing: None, platform: Platform
) -> None:
    async with httpx.AsyncClient(base_url=edges.url(0), headers=auth(platform.admin_key), timeout=30) as admin:
        account = (await admin.post("/v1/manage/accounts", json={"name": "prepaid co", "billing": "prepaid"})).json()
        plan = (await admin.post("/v1/manage/plans", json={"name": "payg"})).json()
        created = await admin.post("/v1/manage/keys", json={"account_id": account["id"], "plan_id": plan["id"],
                                                            "name": "app"})
        assert created.status_code == 201, created.text
        secret = created.json()["key"]
        edges.secrets.append(secret)
        await edges.wait_known(secret)
        model = edges.model("ok")
        # no credit yet: refused with the API's own error, nothing forwarded, nothing charged
        refused = (await _burst(edges, secret, model, 1))[0]
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["type"] == "insufficient_quota"
        assert "prepaid balance" in refused.json()["error"]["message"]
        assert refused.headers["x-should-retry"] == "false"  # the SDKs do not retry what credit must fix
        credit = await admin.post(f"/v1/manage/accounts/{account['id']}/credits",
                                  json={"amount": "0.05", "reason": "welcome credit", "idempotency_key": "w1"})
        assert credit.status_code == 201, credit.text
        again = await admin.post(f"/v1/manage/accounts/{account['id']}/credits",
                                 json={"amount": "0.05", "reason": "welcome credit", "idempotency_key": "w1"})
        assert again.status_code == 200 and again.json()["id"] == credit.json()["id"]  # credited once

        client = redis.from_url(platform.redis.url)
        wallet = redis_keys.wallet(redis_prefix(platform), account["id"])
        holds = redis_keys.holds(redis_prefix(platform), account["id"])

        async def mirrored() -> bool:
            return await client.hget(wallet, "balance") == b"50000"

        served, worst_case = 0, 0
        try:
            await _until(mirrored, 5, "the credit never reached Redis")
            for _ in range(10):  # bursts of 100 until the money is gone
                replies = await _burst(edges, secret, model, 100)
                statuses = [r.status_code for r in replies]
                assert set(statuses) <= {200, 429}, statuses
                for reply in replies:
                    if reply.status_code == 429:
                        error = reply.json()["error"]
                        assert error["type"] == "insufficient_quota"
                        worst_case = micros(re.search(r"may cost up to \$([0-9.]+[0-9])", error["message"])[1])
                if statuses.count(200) == 0:
                    break
                served += statuses.count(200)
                low = await client.hmget(wallet, "balance", "pending")
                assert int(low[0]) - int(low[1] or 0) >= 0  # what the edges see never goes below zero

                async def charged(count: int = served) -> bool:
                    return await client.hlen(holds) == 0 and int(await admin_balance_seq(admin, account["id"])) >= count + 1

                await _until(charged, 30, "usage was not charged")
        finally:
            await client.aclose()

        left = 50_000 - served * REAL_COST
        assert 0 <= left < worst_case  # spent down to less than one more request's worst case, never below 0
        view = (await admin.get(f"/v1/manage/accounts/{account['id']}/balance")).json()
        assert micros(view["balance"]) == left and view["held"] == "0.000000" and micros(view["available"]) == left
        ledger = (await admin.get(f"/v1/manage/accounts/{account['id']}/ledger", params={"limit": 500})).json()
        assert sum(micros(t["amount"]) for t in ledger["data"]) == left
        assert [t["kind"] for t in ledger["data"]].count("charge") == served
        assert all(micros(t["amount"]) == -REAL_COST for t in ledger["data"] if t["kind"] == "charge")
        assert min(micros(t["balance_after"]) for t in ledger["data"]) >= 0
    dsn = platform.postgres.dsn("tollgate_billing")
    conn = await asyncpg.connect(dsn)
    try:
        postings = await conn.fetchval("SELECT sum(amount_micros) FROM ledger_postings WHERE book = $1",
                                       f"wallet:{account['id']}")
        assert postings == 50_000 - served * REAL_COST
    finally:
        await conn.close()


def micros(amount: str) -> int:
    """A money string of the API ("-0.002705") as integer micro-USD."""
    negative = amount.startswith("-")
    whole, _, frac = amount.lstrip("-").partition(".")
    value = int(whole) * 1_000_000 + int((frac + "000000")[:6])
    return -value if negative else value


async def admin_balance_seq(admin: httpx.AsyncClient, account_id: str) -> int:
    return int((await admin.get(f"/v1/manage/accounts/{account_id}/balance")).json()["seq"])
