"""The management API against the real billing database and Kafka: what it stores, what it answers,
and what edges see on keys.v1 after each change."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from services.common.api_keys import hash_key
from services.common.events.keys import KeyEventV1
from services.common.kafka.snapshot import CompactedSnapshot
from services.edge.auth import KeyIndex
from tests.billing.conftest import ADMIN, Manage, dump, event_after, everything_as_text, leaks
from tests.kafka_helpers import eventually

A, P, K = "/v1/manage/accounts", "/v1/manage/plans", "/v1/manage/keys"


def name(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:8]}"


async def all_pages(manage: Manage, caller: Any, path: str) -> set[str]:
    ids: list[str] = []
    while True:
        after = f"&after={ids[-1]}" if ids else ""
        page = await manage.ok(caller, "GET", path, query=f"limit=100{after}")
        ids += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            return set(ids)


async def setup_key(manage: Manage, **plan: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    account = await manage.ok(ADMIN, "POST", A, {"name": name("acct"), "billing": "prepaid"})
    plan_body = {"name": name("plan"), "requests_per_minute": 60, "tokens_per_minute": 10_000,
                 "max_concurrency": 2, "budget_amount": "20.00", "budget_window": "1d",
                 "allowed_models": ["smollm2-*"], **plan}
    made_plan = await manage.ok(ADMIN, "POST", P, plan_body)
    key = await manage.ok(ADMIN, "POST", K, {"account_id": account["id"], "plan_id": made_plan["id"],
                                             "name": name("key")})
    return account, made_plan, key


async def test_a_key_is_answered_once_stored_hashed_and_published_with_its_limits(
    manage: Manage, keys_seen: CompactedSnapshot[KeyEventV1], billing_dsn: str, platform: Any
) -> None:
    account, plan, key = await setup_key(manage)
    secret = key["key"]
    assert secret.startswith(key["prefix"]) and key["id"].startswith("key_") and key["status"] == "active"
    assert plan["budget_amount"] == "20.000000" and plan["budget_window"] == "1d"
    assert key["effective_limits"]["budget_amount"] == "20.000000" and key["limits"] == {}

    again = await manage.ok(ADMIN, "GET", f"{K}/{key['id']}")
    listed = await manage.ok(ADMIN, "GET", K, query=f"account_id={account['id']}")
    digest = hash_key(secret, platform.key_hash_secret)
    for answer in (again, listed):
        assert not leaks(secret, str(answer)) and digest not in str(answer) and "key_hash" not in str(answer)
    assert [k["id"] for k in listed["data"]] == [key["id"]] and listed["object"] == "list"

    conn = await asyncpg.connect(billing_dsn)
    try:
        assert not leaks(secret, await everything_as_text(conn))
        row = await conn.fetchrow("SELECT state_version, published_version FROM api_keys WHERE id = $1", key["id"])
    finally:
        await conn.close()

    event = await event_after(keys_seen, key["id"])
    assert event.version == row["state_version"] == row["published_version"]  # published before answering
    assert (event.account_id, event.plan_id, event.billing, event.kind) == (account["id"], plan["id"], "prepaid", "inference")
    assert event.limits.requests_per_minute == 60 and event.limits.tokens_per_minute == 10_000
    assert event.limits.budget_micros == 20_000_000 and event.limits.budget_window_seconds == 86_400
    assert event.limits.allowed_models == ("smollm2-*",) and event.key_hash == digest
    index = KeyIndex(platform.key_hash_secret)  # what an edge does with it
    index.apply(key["id"], event)
    assert index.authenticate(secret).key_id == key["id"]


async def test_every_change_republishes_with_a_strictly_higher_version(
    manage: Manage, keys_seen: CompactedSnapshot[KeyEventV1]
) -> None:
    account, plan, key = await setup_key(manage)
    v = (await event_after(keys_seen, key["id"])).version

    await manage.ok(ADMIN, "PATCH", f"{P}/{plan['id']}", {"requests_per_minute": 5, "budget_amount": "1.50"})
    event = await event_after(keys_seen, key["id"], v)
    assert event.limits.requests_per_minute == 5 and event.limits.budget_micros == 1_500_000
    v = event.version

    await manage.ok(ADMIN, "PATCH", f"{A}/{account['id']}", {"status": "suspended"})
    event = await event_after(keys_seen, key["id"], v)
    assert event.account_status == "suspended"
    await manage.ok(ADMIN, "PATCH", f"{A}/{account['id']}", {"status": "active"})
    event = await event_after(keys_seen, key["id"], event.version)
    assert event.account_status == "active"
    v = event.version

    # a plan with a lower row version than the old one: the old "sum of versions" went backwards here
    fresh_plan = await manage.ok(ADMIN, "POST", P, {"name": name("plan"), "requests_per_minute": 7})
    await manage.ok(ADMIN, "PATCH", f"{K}/{key['id']}", {"plan_id": fresh_plan["id"]})
    event = await event_after(keys_seen, key["id"], v)
    assert event.plan_id == fresh_plan["id"] and event.limits.requests_per_minute == 7
    assert event.limits.budget_micros is None
    v = event.version

    await manage.ok(ADMIN, "PATCH", f"{K}/{key['id']}", {"status": "disabled", "limits": {"max_concurrency": 1}})
    event = await event_after(keys_seen, key["id"], v)
    assert event.status == "disabled" and event.limits.max_concurrency == 1
    v = event.version

    rotated = await manage.ok(ADMIN, "POST", f"{K}/{key['id']}/rotate")
    assert rotated["id"] != key["id"] and rotated["key"] != key["key"] and rotated["rotated_from"] == key["id"]
    assert (rotated["name"], rotated["status"], rotated["limits"]) == (key["name"], "disabled", {"max_concurrency": 1})
    event = await event_after(keys_seen, key["id"], v)
    assert event.status == "revoked"
    new_event = await event_after(keys_seen, rotated["id"])
    assert new_event.status == "disabled" and new_event.version > v

    status, answer = await manage.call(ADMIN, "PATCH", f"{K}/{key['id']}", {"status": "active"})
    assert status == 409 and answer["error"]["code"] == "key_revoked"
    status, _ = await manage.call(ADMIN, "POST", f"{K}/{key['id']}/rotate")
    assert status == 409

    revoked = await manage.ok(ADMIN, "DELETE", f"{K}/{rotated['id']}")
    assert revoked["status"] == "revoked" and "key" not in revoked
    event = await event_after(keys_seen, rotated["id"], new_event.version)
    assert event.status == "revoked"
    assert (await manage.ok(ADMIN, "DELETE", f"{K}/{rotated['id']}"))["status"] == "revoked"  # idempotent


async def test_suspending_an_account_suspends_the_keys_of_its_sub_accounts(
    manage: Manage, keys_seen: CompactedSnapshot[KeyEventV1]
) -> None:
    parent, plan, _ = await setup_key(manage)
    child = await manage.ok(ADMIN, "POST", A, {"name": name("child"), "parent_id": parent["id"]})
    key = await manage.ok(ADMIN, "POST", K, {"account_id": child["id"], "plan_id": plan["id"], "name": "k"})
    v = (await event_after(keys_seen, key["id"])).version
    await manage.ok(ADMIN, "PATCH", f"{A}/{parent['id']}", {"status": "suspended"})
    event = await event_after(keys_seen, key["id"], v)
    assert event.account_status == "suspended" and event.account_id == child["id"]


BAD_INPUT = [
    ("POST", P, {"name": "p", "bogus": 1}, 400, "Unrecognized request argument supplied: bogus"),
    ("POST", P, {"name": "p", "requests_per_minute": -1}, 400, "greater than or equal to 0"),
    ("POST", P, {"name": "p", "max_concurrency": 2.5}, 400, "valid integer"),
    ("POST", P, {"name": "p", "budget_amount": 20.0, "budget_window": "1d"}, 400, "decimal string"),
    ("POST", P, {"name": "p", "budget_amount": 20, "budget_window": "1d"}, 400, "decimal string"),
    ("POST", P, {"name": "p", "budget_amount": "0.0000001", "budget_window": "1d"}, 400, "6 decimal places"),
    ("POST", P, {"name": "p", "budget_amount": "-1", "budget_window": "1d"}, 400, "non-negative"),
    ("POST", P, {"name": "p", "budget_amount": "5", "budget_window": "5x"}, 400, "unit s, m, h, d or w"),
    ("POST", P, {"name": "p", "budget_amount": "5", "budget_window": "0h"}, 400, "between 60s and 366d"),
    ("POST", P, {"name": "p", "budget_amount": "5", "budget_window": "400d"}, 400, "between 60s and 366d"),
    ("POST", P, {"name": "p", "budget_amount": "5"}, 400, "go together"),
    ("POST", P, {"name": "p", "account_id": "acct_nope"}, 404, "No account found"),
    ("POST", P, {"requests_per_minute": 1}, 400, "Missing required parameter: 'name'"),
    ("POST", P, b"{not json", 400, "could not parse the JSON body"),
    ("POST", P, b"[1, 2]", 400, "must be a JSON object"),
    ("PATCH", "{plan}", {"budget_amount": "1.00"}, 400, "go together"),
    ("PATCH", "{plan}", {"name": None}, 400, "name cannot be null"),
    ("POST", A, {"name": "a", "billing": "free"}, 400, "billing"),
    ("POST", A, {"name": "a", "parent_id": "acct_nope"}, 404, "No account found"),
    ("POST", A, {"name": ""}, 400, "at least 1 character"),
    ("PATCH", "{account}", {"status": "closed"}, 400, "status"),
    ("POST", K, {"account_id": "{account_id}", "plan_id": "plan_nope", "name": "k"}, 404, "No plan found"),
    ("POST", K, {"account_id": "{account_id}", "plan_id": "{plan_id}", "name": "k",
                 "limits": {"requests_per_minute": -5}}, 400, "greater than or equal to 0"),
    ("POST", K, {"account_id": "{account_id}", "plan_id": "{plan_id}", "name": "k",
                 "limits": {"budget_amount": 1.5, "budget_window": "1d"}}, 400, "decimal string"),
    ("POST", K, {"account_id": "{account_id}", "plan_id": "{plan_id}", "name": "k", "kind": "root"}, 400, "kind"),
    ("POST", K, {"account_id": "{account_id}", "plan_id": "{plan_id}", "name": "k",
                 "expires_at": "2001-01-01T00:00:00Z"}, 400, "must be in the future"),
    ("POST", K, {"account_id": "{account_id}", "plan_id": "{plan_id}", "name": "k",
                 "expires_at": "2101-01-01T00:00:00"}, 400, "timezone"),
    ("PATCH", "{key}", {"status": "revoked"}, 400, "status"),
    ("PATCH", "{key}", {"plan_id": "plan_nope"}, 404, "No plan found"),
    ("GET", K, None, 400, "Unrecognized request argument supplied: acount_id"),
    ("GET", "/v1/manage/nothing", None, 404, "Unknown request URL"),
    ("PUT", "{key}", {"name": "x"}, 405, "allowed: GET, PATCH, DELETE"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "fragment"), BAD_INPUT,
                         ids=[f"{m} {p} {f}" for m, p, _, _, f in BAD_INPUT])
async def test_bad_input_is_refused_clearly_and_changes_nothing(
    manage: Manage, billing_dsn: str, method: str, path: str, body: Any, status: int, fragment: str
) -> None:
    account, plan, key = await setup_key(manage, budget_amount=None, budget_window=None)
    ids = {"{account}": f"{A}/{account['id']}", "{plan}": f"{P}/{plan['id']}", "{key}": f"{K}/{key['id']}"}
    path = ids.get(path, path)
    if isinstance(body, dict):
        body = {k: {"{account_id}": account["id"], "{plan_id}": plan["id"]}.get(v, v) if isinstance(v, str) else v
                for k, v in body.items()}
    query = "acount_id=x" if method == "GET" and path == K else ""
    conn = await asyncpg.connect(billing_dsn)
    try:
        before = await dump(conn)
        got, answer = await manage.call(ADMIN, method, path, body, query)
        after = await dump(conn)
    finally:
        await conn.close()
    assert got == status, answer
    error = answer["error"]
    assert fragment in error["message"] and set(error) == {"message", "type", "param", "code"}
    assert error["type"] == {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error"}[status]
    assert after == before


async def test_a_management_key_sees_only_its_tree(manage: Manage) -> None:
    root = await manage.ok(ADMIN, "POST", A, {"name": name("reseller"), "billing": "prepaid"})
    sibling = await manage.ok(ADMIN, "POST", A, {"name": name("sibling")})
    plan = await manage.ok(ADMIN, "POST", P, {"name": name("plan"), "requests_per_minute": 100,
                                               "allowed_models": ["gpt-4o*"]})
    theirs = await manage.ok(ADMIN, "POST", P, {"name": name("theirs"), "account_id": sibling["id"]})
    sibling_key = await manage.ok(ADMIN, "POST", K, {"account_id": sibling["id"], "plan_id": plan["id"], "name": "s"})
    mgmt = await manage.ok(ADMIN, "POST", K, {"account_id": root["id"], "plan_id": plan["id"], "name": "m",
                                              "kind": "management"})
    assert mgmt["kind"] == "management"
    me = type(ADMIN)(account_id=root["id"], key_id=mgmt["id"])

    child = await manage.ok(me, "POST", A, {"name": name("customer")})
    assert child["parent_id"] == root["id"] and child["billing"] == "prepaid"  # inherited, not chosen
    seen = await manage.ok(me, "GET", A)
    assert {a["id"] for a in seen["data"]} == {root["id"], child["id"]}

    for method, path, body in [
        ("GET", f"{A}/{sibling['id']}", None), ("PATCH", f"{A}/{sibling['id']}", {"name": "x"}),
        ("GET", f"{K}/{sibling_key['id']}", None), ("PATCH", f"{K}/{sibling_key['id']}", {"status": "disabled"}),
        ("DELETE", f"{K}/{sibling_key['id']}", None), ("POST", f"{K}/{sibling_key['id']}/rotate", None),
        ("GET", f"{P}/{theirs['id']}", None),
        ("POST", A, {"name": "x", "parent_id": sibling["id"]}),
        ("POST", K, {"account_id": sibling["id"], "plan_id": plan["id"], "name": "x"}),
        ("POST", K, {"account_id": child["id"], "plan_id": theirs["id"], "name": "x"}),
    ]:
        status, answer = await manage.call(me, method, path, body)
        assert status == 404, (method, path, answer)
    status, answer = await manage.call(me, "GET", K, query=f"account_id={sibling['id']}")
    assert status == 404
    plans_seen = await all_pages(manage, me, P)
    assert plan["id"] in plans_seen and theirs["id"] not in plans_seen
    assert theirs["id"] in await all_pages(manage, ADMIN, P)

    for method, path, body, code in [
        ("POST", P, {"name": "mine"}, "admin_only"),
        ("PATCH", f"{P}/{plan['id']}", {"requests_per_minute": 1000}, "admin_only"),
        ("PATCH", f"{A}/{root['id']}", {"status": "suspended"}, "own_account"),
        ("PATCH", f"{A}/{child['id']}", {"billing": "invoice"}, "admin_only"),
        ("POST", A, {"name": "x", "billing": "invoice"}, "admin_only"),
    ]:
        status, answer = await manage.call(me, method, path, body)
        assert (status, answer["error"]["type"], answer["error"]["code"]) == (403, "permission_error", code), path
    for limits in ({"requests_per_minute": 200}, {"allowed_models": ["*"]}, {"requests_per_minute": None}):
        status, answer = await manage.call(me, "POST", K, {"account_id": child["id"], "plan_id": plan["id"],
                                                           "name": "x", "limits": limits})
        assert (status, answer["error"]["code"]) == (400, "limit_exceeds_plan"), limits
        assert answer["error"]["param"] == f"limits.{next(iter(limits))}"

    tight = await manage.ok(me, "POST", K, {"account_id": child["id"], "plan_id": plan["id"], "name": "x",
                                            "limits": {"requests_per_minute": 50, "allowed_models": ["gpt-4o-mini"]}})
    assert tight["effective_limits"]["requests_per_minute"] == 50
    status, answer = await manage.call(me, "PATCH", f"{K}/{tight['id']}", {"limits": {"requests_per_minute": 101}})
    assert status == 400 and answer["error"]["code"] == "limit_exceeds_plan"
    loose = await manage.ok(ADMIN, "PATCH", f"{K}/{tight['id']}", {"limits": {"requests_per_minute": 101}})
    assert loose["effective_limits"]["requests_per_minute"] == 101  # the operator may loosen
    assert (await manage.ok(me, "PATCH", f"{A}/{child['id']}", {"status": "suspended"}))["status"] == "suspended"
    keys_seen = {k["id"] for k in (await manage.ok(me, "GET", K, query="limit=100"))["data"]}
    assert keys_seen == {mgmt["id"], tight["id"]}


async def test_lists_page_by_id(manage: Manage) -> None:
    parent = await manage.ok(ADMIN, "POST", A, {"name": name("parent")})
    made = sorted([(await manage.ok(ADMIN, "POST", A, {"name": f"c{i}", "parent_id": parent["id"]}))["id"]
                   for i in range(3)])
    first = await manage.ok(ADMIN, "GET", A, query=f"parent_id={parent['id']}&limit=2")
    assert [a["id"] for a in first["data"]] == made[:2] and first["has_more"] is True
    rest = await manage.ok(ADMIN, "GET", A, query=f"parent_id={parent['id']}&limit=2&after={made[1]}")
    assert [a["id"] for a in rest["data"]] == made[2:] and rest["has_more"] is False
    status, answer = await manage.call(ADMIN, "GET", A, query="limit=0")
    assert status == 400 and answer["error"]["param"] == "limit"


async def test_concurrent_changes_converge_on_the_last_committed_state(
    manage: Manage, keys_seen: CompactedSnapshot[KeyEventV1], billing_dsn: str
) -> None:
    _, plan, key = await setup_key(manage)
    keys = [key] + [await manage.ok(ADMIN, "POST", K, {"account_id": key["account_id"], "plan_id": plan["id"],
                                                       "name": f"k{i}"}) for i in range(3)]
    changes = [manage.call(ADMIN, "PATCH", f"{P}/{plan['id']}", {"requests_per_minute": i}) for i in range(15)]
    changes += [manage.call(ADMIN, "PATCH", f"{K}/{k['id']}", {"name": f"n{i}"}) for i in range(5) for k in keys]
    statuses = [status for status, _ in await asyncio.gather(*changes)]
    assert set(statuses) <= {200, 409} and statuses.count(200) >= len(statuses) // 2
    conn = await asyncpg.connect(billing_dsn)
    try:
        for k in keys:
            row = await conn.fetchrow(
                "SELECT k.state_version, p.requests_per_minute FROM api_keys k JOIN plans p ON p.id = k.plan_id"
                " WHERE k.id = $1", k["id"])

            async def caught_up(key_id: str = k["id"], version: int = row["state_version"]) -> bool:
                event = keys_seen.get(key_id)
                return event is not None and event.version == version

            await eventually(caught_up, timeout=10, what="edges hold the last committed version")
            event = keys_seen.get(k["id"])
            assert event is not None and event.limits.requests_per_minute == row["requests_per_minute"]
    finally:
        await conn.close()


async def test_no_key_is_put_on_an_expired_plan(manage: Manage, billing_dsn: str) -> None:
    account, plan, _ = await setup_key(manage)
    conn = await asyncpg.connect(billing_dsn)
    try:
        await conn.execute("UPDATE plans SET expires_at = now() - interval '1 minute' WHERE id = $1", plan["id"])
    finally:
        await conn.close()
    status, answer = await manage.call(ADMIN, "POST", K, {"account_id": account["id"], "plan_id": plan["id"], "name": "late"})
    assert status == 400 and answer["error"]["code"] == "plan_expired"
    status, answer = await manage.call(ADMIN, "POST", P, {"name": "past", "expires_at": "2020-01-01T00:00:00Z"})
    assert status == 400 and answer["error"]["param"] == "expires_at"
