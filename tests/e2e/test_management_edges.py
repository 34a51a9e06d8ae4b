"""The management API through the edge, with billing running: what an operator does reaches every
edge within 2 seconds (promise 5), and an account's management key stays inside its own tree."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest

from infra.stack.platform import Platform
from tests.e2e.edges import HI, Edges, auth, billing_fixture, edges_fixture, more_edges_fixture  # noqa: F401 - module fixtures

PROPAGATION_SECONDS = 2.0


@pytest.fixture
async def admin(edges: Edges, billing: None, platform: Platform) -> Any:
    async with httpx.AsyncClient(base_url=edges.url(0), headers=auth(platform.admin_key), timeout=30) as client:
        yield client


async def _until_all_edges(edges: Edges, check: Callable[[httpx.Response], bool],
                           request: Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]) -> float:
    """Seconds until ``check`` holds on the answer of every edge (polled every 20 ms, 10 s at most)."""
    started = time.monotonic()
    pending = set(edges.urls)
    async with httpx.AsyncClient(timeout=10) as client:
        while pending:
            for url in list(pending):
                if check(await request(client, url)):
                    pending.discard(url)
            assert time.monotonic() - started < 10, f"edges never saw the change: {pending}"
            await asyncio.sleep(0.02)
    return time.monotonic() - started


def _chat(secret: str, model: str) -> Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]:
    async def call(client: httpx.AsyncClient, url: str) -> httpx.Response:
        return await client.post(f"{url}/v1/chat/completions", headers=auth(secret),
                                 json={"model": model, "messages": HI, "max_tokens": 5})
    return call


async def _account_plan_key(admin: httpx.AsyncClient, edges: Edges, rpm: int = 100) -> tuple[dict[str, Any], ...]:
    account = (await admin.post("/v1/manage/accounts", json={"name": "acme"})).json()
    plan = (await admin.post("/v1/manage/plans", json={"name": "pro", "requests_per_minute": rpm})).json()
    created = await admin.post("/v1/manage/keys", json={"account_id": account["id"], "plan_id": plan["id"], "name": "app"})
    assert created.status_code == 201, created.text
    key = created.json()
    edges.secrets.append(key["key"])
    return account, plan, key


async def test_a_key_created_through_the_api_works_with_the_sdk_on_every_edge(admin: httpx.AsyncClient, edges: Edges) -> None:
    _, _, key = await _account_plan_key(admin, edges)
    assert key["key"].startswith("tg-") and key["key"].startswith(key["prefix"])
    await _until_all_edges(edges, lambda r: r.status_code == 200, _chat(key["key"], edges.model("ok")))
    for url in edges.urls:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key["key"], max_retries=0) as client:
            raw = await client.chat.completions.with_raw_response.create(model=edges.model("ok"), messages=HI)  # type: ignore[arg-type]
            assert raw.headers["x-ratelimit-limit-requests"] == "100"
    shown = (await admin.get(f"/v1/manage/keys/{key['id']}")).json()
    assert "key" not in shown and key["key"] not in str(shown)


async def test_a_revoked_key_is_refused_by_all_three_edges_within_2_seconds(admin: httpx.AsyncClient, edges: Edges) -> None:
    _, _, key = await _account_plan_key(admin, edges)
    call = _chat(key["key"], edges.model("ok"))
    await _until_all_edges(edges, lambda r: r.status_code == 200, call)
    started = time.monotonic()
    assert (await admin.delete(f"/v1/manage/keys/{key['id']}")).status_code == 200
    elapsed = time.monotonic() - started + await _until_all_edges(edges, lambda r: r.status_code == 401, call)
    assert elapsed < PROPAGATION_SECONDS, f"revocation took {elapsed:.2f}s"
    assert (await admin.patch(f"/v1/manage/keys/{key['id']}", json={"status": "active"})).status_code == 409


async def test_a_plan_change_applies_on_all_three_edges_within_2_seconds(admin: httpx.AsyncClient, edges: Edges) -> None:
    _, plan, key = await _account_plan_key(admin, edges, rpm=100)
    call = _chat(key["key"], edges.model("ok"))
    await _until_all_edges(edges, lambda r: r.headers.get("x-ratelimit-limit-requests") == "100", call)
    started = time.monotonic()
    patched = await admin.patch(f"/v1/manage/plans/{plan['id']}", json={"requests_per_minute": 1000})
    assert patched.status_code == 200 and patched.json()["requests_per_minute"] == 1000
    seen = await _until_all_edges(edges, lambda r: r.headers.get("x-ratelimit-limit-requests") == "1000", call)
    assert time.monotonic() - started < PROPAGATION_SECONDS and seen < PROPAGATION_SECONDS


async def test_a_suspended_account_is_refused_everywhere_and_restored(admin: httpx.AsyncClient, edges: Edges) -> None:
    account, _, key = await _account_plan_key(admin, edges)
    call = _chat(key["key"], edges.model("ok"))
    await _until_all_edges(edges, lambda r: r.status_code == 200, call)
    await admin.patch(f"/v1/manage/accounts/{account['id']}", json={"status": "suspended"})
    assert await _until_all_edges(edges, lambda r: r.status_code == 403, call) < PROPAGATION_SECONDS
    await admin.patch(f"/v1/manage/accounts/{account['id']}", json={"status": "active"})
    assert await _until_all_edges(edges, lambda r: r.status_code == 200, call) < PROPAGATION_SECONDS


async def test_rotation_issues_a_new_secret_and_revokes_the_old(admin: httpx.AsyncClient, edges: Edges) -> None:
    _, _, key = await _account_plan_key(admin, edges)
    old = _chat(key["key"], edges.model("ok"))
    await _until_all_edges(edges, lambda r: r.status_code == 200, old)
    rotated = await admin.post(f"/v1/manage/keys/{key['id']}/rotate")
    assert rotated.status_code in (200, 201), rotated.text
    new = rotated.json()
    edges.secrets.append(new["key"])
    assert new["id"] != key["id"] and new["key"] != key["key"]
    await _until_all_edges(edges, lambda r: r.status_code == 200, _chat(new["key"], edges.model("ok")))
    await _until_all_edges(edges, lambda r: r.status_code == 401, old)


async def test_a_management_key_manages_only_its_own_tree(admin: httpx.AsyncClient, edges: Edges) -> None:
    parent = (await admin.post("/v1/manage/accounts", json={"name": "platform-co"})).json()
    stranger = (await admin.post("/v1/manage/accounts", json={"name": "someone-else"})).json()
    plan = (await admin.post("/v1/manage/plans", json={"name": "resale", "requests_per_minute": 60})).json()
    manager = (await admin.post("/v1/manage/keys", json={
        "account_id": parent["id"], "plan_id": plan["id"], "name": "mgmt", "kind": "management",
    })).json()
    edges.secrets.append(manager["key"])
    await _until_all_edges(
        edges, lambda r: r.status_code == 200,
        lambda c, url: c.get(f"{url}/v1/manage/accounts/{parent['id']}", headers=auth(manager["key"])),
    )
    async with httpx.AsyncClient(base_url=edges.url(1), headers=auth(manager["key"]), timeout=30) as mine:
        child = await mine.post("/v1/manage/accounts", json={"name": "end-user-1"})
        assert child.status_code == 201 and child.json()["parent_id"] == parent["id"]
        assert (await mine.get(f"/v1/manage/accounts/{stranger['id']}")).status_code == 404
        listed = {a["id"] for a in (await mine.get("/v1/manage/accounts")).json()["data"]}
        assert child.json()["id"] in listed and stranger["id"] not in listed
        assert (await mine.post("/v1/manage/plans", json={"name": "free-for-all"})).status_code == 403
        loosened = await mine.post("/v1/manage/keys", json={
            "account_id": child.json()["id"], "plan_id": plan["id"], "name": "x", "limits": {"requests_per_minute": 10_000},
        })
        assert loosened.status_code == 400
        user_key = await mine.post("/v1/manage/keys", json={
            "account_id": child.json()["id"], "plan_id": plan["id"], "name": "end-user-app",
        })
        assert user_key.status_code == 201
        edges.secrets.append(user_key.json()["key"])
    # a management key cannot generate, an inference key cannot manage
    refused = await _chat(manager["key"], edges.model("ok"))(admin, edges.url(2))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "wrong_key_kind"
    await _until_all_edges(edges, lambda r: r.status_code == 200, _chat(user_key.json()["key"], edges.model("ok")))
    as_user = await admin.get("/v1/manage/accounts", headers=auth(user_key.json()["key"]))
    assert as_user.status_code == 403


async def test_bad_management_input_is_refused_and_changes_nothing(admin: httpx.AsyncClient, edges: Edges) -> None:
    before = (await admin.get("/v1/manage/plans", params={"limit": 100})).json()
    bad = [
        {"name": "p", "budget_amount": 0.01, "budget_window": "1d"},  # money as a float
        {"name": "p", "requests_per_minute": -1},
        {"name": "p", "budget_amount": "1.00", "budget_window": "5x"},
        {"name": "p", "budget_amount": "1.00"},  # a budget needs its window
        {"name": "p", "surprise": True},
    ]
    for body in bad:
        reply = await admin.post("/v1/manage/plans", json=body)
        assert reply.status_code == 400, (body, reply.text)
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
    unknown_plan = await admin.post("/v1/manage/keys", json={"account_id": "acct_nope", "plan_id": "plan_nope", "name": "k"})
    assert unknown_plan.status_code in (400, 404)
    assert (await admin.get("/v1/manage/plans", params={"limit": 100})).json() == before
    no_auth = await admin.get("/v1/manage/plans", headers={"authorization": ""})
    assert no_auth.status_code == 401 and no_auth.json()["error"]["type"] == "authentication_error"


async def test_openapi_document_lists_the_management_api(edges: Edges, billing: None) -> None:
    async with httpx.AsyncClient() as client:
        doc = (await client.get(f"{edges.url(0)}/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {"/v1/manage/accounts", "/v1/manage/plans", "/v1/manage/keys", "/v1/manage/keys/{id}"} <= set(doc["paths"])


async def test_no_management_secret_in_any_log(edges: Edges, platform: Platform) -> None:
    text = "\n".join(p.read_text(errors="replace") for p in platform.config.run_dir.rglob("*.log"))
    assert "billing" in text
    for secret in [*edges.secrets, platform.admin_key]:
        assert secret not in text and secret[3:] not in text
