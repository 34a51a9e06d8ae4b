"""The catalog's management API against the real database and Kafka: what it stores and answers, and
what edges (``CatalogView``) and routers (``RoutingTable``) see on catalog.v1 after each change."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.common.errors import Gone, NotFound
from services.common.events.keys import KeyEventV1
from services.edge.catalog_view import deprecation_headers
from tests.catalog.conftest import ACCOUNT, ADMIN, Catalog, dump

M, C = "/v1/manage/models", "/v1/manage/catalog"
KEY = KeyEventV1.from_bytes(
    (Path(__file__).resolve().parents[2] / "services/common/events/examples/keys.v1/active_key.json").read_bytes()
)
ANY_MODEL = KEY.model_copy(update={"limits": KEY.limits.model_copy(update={"allowed_models": None})})


def name(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:8]}"


def model_body(**changes: Any) -> dict[str, Any]:
    return {"display_name": "Test model", "context_length": 32768, "max_output_tokens": 4096,
            "capabilities": ["chat", "streaming"], **changes}


async def new_model(catalog: Catalog, **changes: Any) -> str:
    model_id = name("m")
    await catalog.ok(ADMIN, "PUT", f"{M}/{model_id}", model_body(**changes))
    return model_id


async def test_a_model_put_is_on_catalog_v1_within_two_seconds_of_the_answer(catalog: Catalog) -> None:
    model_id = name("m")
    status, made = await catalog.call(ADMIN, "PUT", f"{M}/{model_id}", model_body(tags=["x"]))
    answered = time.monotonic()
    assert status == 201 and made["id"] == model_id and made["enabled"] and made["price"] is None
    waited = await catalog.seen.until(lambda: catalog.seen.version(f"model:{model_id}") == made["version"])
    assert waited < 2.0 and time.monotonic() - answered < 2.0
    assert catalog.seen.view.models[model_id].tags == ("x",)
    created = catalog.seen.view.models[model_id].created_at  # the row's: model lists show it
    assert created is not None and created == datetime.fromisoformat(made["created_at"])

    status, same = await catalog.call(ADMIN, "PUT", f"{M}/{model_id}", model_body(tags=["x"]))
    assert status == 200 and same["version"] == made["version"]  # nothing changed: no new version
    status, renamed = await catalog.call(ADMIN, "PUT", f"{M}/{model_id}", model_body(display_name="Renamed"))
    assert status == 200 and renamed["version"] > made["version"] and renamed["tags"] == []  # PUT replaces
    await catalog.seen.until(lambda: catalog.seen.view.models[model_id].display_name == "Renamed", 2.0)
    assert catalog.seen.view.models[model_id].created_at == created  # an edit is not a new model


async def test_a_deployments_features_reach_the_router(catalog: Catalog) -> None:
    """What an OpenAI-compatible server takes beyond the common subset; null (the default) leaves it
    to the endpoint, and an empty list says: nothing."""
    model_id = await new_model(catalog)
    dep = f"{model_id}-vllm"
    body = {"backend": "openai", "endpoint": "http://10.0.0.7:8000/v1", "upstream_model": "qwen"}
    made = await catalog.ok(ADMIN, "PUT", f"{M}/{model_id}/deployments/{dep}",
                            {**body, "features": ["top_k", "continuous_usage"]})
    assert made["features"] == ["top_k", "continuous_usage"]
    seen = catalog.seen
    await seen.until(lambda: dep in seen.routing.deployments, 2.0)
    assert seen.routing.deployments[dep].features == ("top_k", "continuous_usage")
    cleared = await catalog.ok(ADMIN, "PUT", f"{M}/{model_id}/deployments/{dep}", body)
    assert cleared["features"] is None and cleared["version"] > made["version"]
    await seen.until(lambda: seen.routing.deployments[dep].features is None, 2.0)


async def test_an_alias_routes_to_its_target_and_follows_a_repoint(catalog: Catalog) -> None:
    first, second = await new_model(catalog), await new_model(catalog)
    for model_id in (first, second):
        await catalog.ok(ADMIN, "PUT", f"{M}/{model_id}/deployments/{model_id}-dep",
                         {"backend": "openai", "endpoint": "http://127.0.0.1:9/v1", "upstream_model": model_id})
    alias = name("latest")
    made = await catalog.ok(ADMIN, "PUT", f"{C}/aliases/{alias}", {"target": first})
    assert made["target"] == first
    seen = catalog.seen
    await seen.until(lambda: alias in seen.view.aliases, 2.0)
    assert seen.view.resolve(alias, ANY_MODEL).id == first
    assert [d.id for d in seen.routing.chain(alias)] == [f"{first}-dep"]
    assert (await catalog.ok(ADMIN, "GET", f"{M}/{first}"))["aliases"] == [alias]

    await catalog.ok(ADMIN, "PUT", f"{C}/aliases/{alias}", {"target": second})
    await seen.until(lambda: seen.routing.resolve(alias) == second, 2.0)
    assert seen.view.resolve(alias, ANY_MODEL).id == second
    assert [d.id for d in seen.routing.chain(alias)] == [f"{second}-dep"]

    gone = await catalog.ok(ADMIN, "DELETE", f"{C}/aliases/{alias}")
    assert gone["deleted"]
    await seen.until(lambda: alias not in seen.view.aliases, 2.0)
    with pytest.raises(NotFound):
        seen.view.resolve(alias, ANY_MODEL)
    assert (await catalog.call(ADMIN, "GET", f"{C}/aliases/{alias}"))[0] == 404
    status, back = await catalog.call(ADMIN, "PUT", f"{C}/aliases/{alias}", {"target": first})
    assert status == 201 and not back["deleted"] and back["version"] > gone["version"]
    await seen.until(lambda: seen.view.aliases.get(alias) == first, 2.0)


async def test_a_deprecated_model_works_with_its_notice_and_fails_cleanly_after_sunset(catalog: Catalog) -> None:
    old, new = await new_model(catalog), await new_model(catalog)
    alias = name("stable")
    await catalog.ok(ADMIN, "PUT", f"{C}/aliases/{alias}", {"target": old})
    now = datetime.now(UTC)
    patched = await catalog.ok(ADMIN, "PATCH", f"{M}/{old}", {
        "deprecated_at": (now - timedelta(days=1)).isoformat(), "sunset_at": (now + timedelta(days=30)).isoformat(),
        "replacement": new,
    })
    assert patched["replacement"] == new and patched["display_name"] == "Test model"  # PATCH keeps the rest
    seen = catalog.seen
    await seen.until(lambda: seen.view.models[old].replacement == new, 2.0)
    for requested in (old, alias):  # still served, through its alias too, with the notice
        served = seen.view.resolve(requested, ANY_MODEL)
        assert served.id == old
        assert {"deprecation", "sunset"} <= set(deprecation_headers(served))

    await catalog.ok(ADMIN, "PATCH", f"{M}/{old}", {"sunset_at": (now - timedelta(minutes=1)).isoformat()})
    await seen.until(lambda: (s := seen.view.models[old].sunset_at) is not None and s < now, 2.0)
    for requested in (old, alias):
        with pytest.raises(Gone, match=f"Use `{new}` instead") as err:
            seen.view.resolve(requested, ANY_MODEL)
        assert err.value.http_status == 410 and err.value.code == "model_sunset"

    cleared = await catalog.ok(ADMIN, "PATCH", f"{M}/{old}", {"sunset_at": None, "deprecated_at": None})
    assert cleared["sunset_at"] is None and cleared["replacement"] == new


async def test_disabling_a_model_removes_it_from_edges_and_readers(catalog: Catalog) -> None:
    model_id = await new_model(catalog)
    seen = catalog.seen
    await seen.until(lambda: model_id in seen.view.models, 2.0)
    await catalog.ok(ADMIN, "PATCH", f"{M}/{model_id}", {"enabled": False})
    await seen.until(lambda: model_id not in seen.view.models, 2.0)
    assert (await catalog.call(ACCOUNT, "GET", f"{M}/{model_id}"))[0] == 404
    assert (await catalog.ok(ADMIN, "GET", f"{M}/{model_id}"))["enabled"] is False
    await catalog.ok(ADMIN, "PATCH", f"{M}/{model_id}", {"enabled": True})
    await seen.until(lambda: model_id in seen.view.models, 2.0)


async def test_account_callers_read_what_is_served_and_change_nothing(catalog: Catalog) -> None:
    listed = await catalog.ok(ACCOUNT, "GET", M, query="limit=100")
    ids = {m["id"] for m in listed["data"]}
    assert "smollm2-135m-instruct" in ids and "local-openai-ok" not in ids  # disabled in the seed
    assert all(m["deployments"] is None for m in listed["data"])
    smol = await catalog.ok(ACCOUNT, "GET", f"{M}/smollm2-135m-instruct")
    assert smol["price"]["input"] == "0.020000" and smol["aliases"] == ["smollm2"]
    admin_view = await catalog.ok(ADMIN, "GET", f"{M}/smollm2-135m-instruct")
    assert [d["id"] for d in admin_view["deployments"]] == ["smollm2-triton-cpu"]
    every = await catalog.ok(ADMIN, "GET", M, query="include_disabled=true&limit=100")
    assert "local-openai-ok" in {m["id"] for m in every["data"]}
    for method, path, body in [
        ("GET", M, None), ("PUT", f"{M}/x", model_body()), ("PATCH", f"{M}/smollm2-135m-instruct", {"enabled": False}),
        ("POST", f"{M}/smollm2-135m-instruct/prices", {"input": "0", "output": "0"}),
        ("PUT", f"{C}/aliases/x", {"target": "gpt-4o"}), ("GET", f"{M}/gpt-4o/deployments", None),
        ("GET", f"{C}/audit", None), ("GET", f"{C}/pending", None), ("POST", f"{C}/sync", {"source": "x"}),
    ]:
        status, answer = await catalog.call(ACCOUNT, method, path, body, query="include_disabled=true" if body is None and path == M else "")
        assert status == 403 and answer["error"]["type"] == "permission_error", (method, path, answer)


async def test_paging_lists_every_model_once(catalog: Catalog) -> None:
    ids: list[str] = []
    after = ""
    while True:
        page = await catalog.ok(ADMIN, "GET", M, query=f"limit=7&include_disabled=true{after}")
        ids += [m["id"] for m in page["data"]]
        if not page["has_more"]:
            break
        after = f"&after={ids[-1]}"
    conn = await asyncpg.connect(catalog.dsn)
    try:
        everything = [r["id"] for r in await conn.fetch("SELECT id FROM models ORDER BY id")]
    finally:
        await conn.close()
    assert ids == everything


async def test_model_ids_with_slashes_are_addressable(catalog: Catalog) -> None:
    model_id = f"meta-llama/{name('Llama')}"
    await catalog.ok(ADMIN, "PUT", f"{M}/{model_id}", model_body())
    price = await catalog.ok(ADMIN, "POST", f"{M}/{model_id}/prices", {"input": "0.10", "output": "0.20"})
    assert price["model_id"] == model_id and price["cached_input"] == "0.100000"
    assert (await catalog.ok(ADMIN, "GET", f"{M}/{model_id}"))["price"]["id"] == price["id"]
    status, answer = await catalog.call(ADMIN, "PUT", f"{M}/x/prices", model_body())
    assert status == 405 and answer["error"]["code"] == "method_not_allowed"


async def test_the_audit_trail_names_who_changed_what_from_what_to_what(catalog: Catalog) -> None:
    model_id = await new_model(catalog)
    await catalog.ok(ADMIN, "PATCH", f"{M}/{model_id}", {"description": "now described"})
    trail = await catalog.ok(ADMIN, "GET", f"{C}/audit", query=f"kind=model&entity_id={model_id}")
    update, create = trail["data"]
    assert (create["action"], update["action"]) == ("create", "update")
    assert create["before"] is None and create["after"]["display_name"] == "Test model"
    assert update["before"]["description"] == "" and update["after"]["description"] == "now described"
    assert update["actor"] == "admin" and update["request_id"] == "req_test" and update["version"] > create["version"]


BAD = [
    ("PUT", "/{m}", model_body(context_length=1.5), 400, "context_length"),
    ("PUT", "/{m}", model_body(context_length="100"), 400, "context_length"),
    ("PUT", "/{m}", model_body(max_output_tokens=99999), 400, None),
    ("PUT", "/{m}", model_body(colour="blue"), 400, "colour"),
    ("PUT", "/{m}", model_body(replacement="no-such-model"), 400, "replacement"),
    ("PUT", "/{m}", model_body(sunset_at="2030-01-01T00:00:00Z"), 400, None),
    ("PUT", "/{m}", model_body(deprecated_at="2030-01-01T00:00:00"), 400, "deprecated_at"),
    ("PUT", "/bad id", model_body(), 400, "id"),
    ("PUT", "/smollm2", model_body(), 409, "id"),
    ("PATCH", "/{m}", {"display_name": None}, 400, None),
    ("PATCH", "/{m}", {"sunset_at": "2020-01-01T00:00:00Z", "deprecated_at": "2021-01-01T00:00:00Z"}, 400, None),
    ("PATCH", "/{m}", {"replacement": "{m}"}, 400, "replacement"),
    ("PATCH", "/no-such-model", {"enabled": False}, 404, "model"),
    ("POST", "/{m}/prices", {"input": 2.5, "output": "10"}, 400, "input"),
    ("POST", "/{m}/prices", {"input": "-1", "output": "10"}, 400, "input"),
    ("POST", "/{m}/prices", {"input": "2.5000001", "output": "10"}, 400, "input"),
    ("POST", "/{m}/prices", {"input": "5000", "output": "10"}, 400, "input"),
    ("POST", "/{m}/prices", {"input": "NaN", "output": "10"}, 400, "input"),
    ("POST", "/{m}/prices", {"input": "1", "output": "1", "batch_discount": 50}, 400, "batch_discount"),
    ("POST", "/{m}/prices", {"input": "1", "output": "1", "effective_from": "2020-01-01T00:00:00Z"}, 400,
     "effective_from"),
    ("POST", "/{m}/prices", {"input": "1", "output": "1", "id": "smollm2-2026-11-01"}, 409, "id"),
    ("POST", "/no-such-model/prices", {"input": "1", "output": "1"}, 404, "model_id"),
    ("PUT", "/{m}/deployments/d", {"backend": "triton", "endpoint": "http://x", "upstream_model": "e"}, 400, None),
    ("PUT", "/{m}/deployments/d", {"backend": "openai", "endpoint": "http://x/v1", "upstream_model": "e",
                                   "fallback": ["nope"]}, 400, "fallback[0]"),
    ("PUT", "/{m}/deployments/d", {"backend": "openai", "endpoint": "http://x/v1", "upstream_model": "e",
                                   "credentials_env": "sk-live-123"}, 400, "credentials_env"),
    ("PUT", "/{m}/deployments/smollm2-triton-cpu", {"backend": "openai", "endpoint": "http://x/v1",
                                                    "upstream_model": "e"}, 409, "deployment_id"),
    ("DELETE", "/{m}/deployments/smollm2-triton-cpu", None, 404, "deployment_id"),
    ("PUT", "/{m}/deployments/d", {"backend": "openai", "endpoint": "http://x/v1", "upstream_model": "e",
                                   "features": ["top_p"]}, 400, "features[0]"),
    ("PUT", "/{m}/deployments/d", {"backend": "openai", "endpoint": "http://x/v1", "upstream_model": "e",
                                   "features": ["top_k", "top_k"]}, 400, None),
    ("PUT", "/{m}/deployments/d", {"backend": "triton", "endpoint": "127.0.0.1:1", "upstream_model": "e",
                                   "features": ["top_k"]}, 400, None),
    ("PUT", "/{m}", b"{not json", 400, None),
    ("PUT", "/{m}", b"[1, 2]", 400, None),
]
ALIAS_BAD = [
    ("PUT", "/aliases/gpt-4o", {"target": "gpt-4o-mini"}, 409, "alias"),
    ("PUT", "/aliases/x-{m}", {"target": "smollm2"}, 400, "target"),
    ("PUT", "/aliases/x-{m}", {"target": "no-such-model"}, 400, "target"),
    ("PUT", "/aliases/x-{m}", {"target": "gpt-4o", "weight": 1}, 400, "weight"),
    ("DELETE", "/aliases/no-such-alias", None, 404, "alias"),
    ("POST", "/sync", {"source": "nowhere"}, 400, "source"),
    ("POST", "/pending/chg_nope/approve", {}, 404, "id"),
    ("GET", "/audit", None, 400, "limit"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "param"), BAD + [(m, "@" + p, b, s, q) for m, p, b, s, q in ALIAS_BAD])
async def test_bad_input_is_answered_4xx_in_the_openai_shape_and_changes_nothing(
    catalog: Catalog, method: str, path: str, body: Any, status: int, param: str | None
) -> None:
    model_id = await new_model(catalog)
    full = (C + path[1:] if path.startswith("@") else M + path).replace("{m}", model_id)
    if isinstance(body, dict):
        body = {k: (v.replace("{m}", model_id) if isinstance(v, str) else v) for k, v in body.items()}
    conn = await asyncpg.connect(catalog.dsn)
    try:
        before = await dump(conn)
        got, answer = await catalog.call(ADMIN, method, full, body, query="limit=0" if full.endswith("/audit") else "")
        assert got == status, answer
        assert set(answer) == {"error"} and set(answer["error"]) == {"message", "type", "param", "code"}
        assert answer["error"]["type"] in ("invalid_request_error", "not_found_error", "conflict_error")
        if param is not None:
            assert answer["error"]["param"] == param, answer
        assert await dump(conn) == before
    finally:
        await conn.close()
