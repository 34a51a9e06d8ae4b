"""Metering's OpenAPI document describes exactly its routes, and its schemas resolve and match the answer."""

from __future__ import annotations

from typing import Any

import orjson

from services.common.manage.routing import match
from services.metering.api.context import Deps
from services.metering.api.dispatch import dispatch
from services.metering.api.openapi import document
from services.metering.api.routes import ROUTES
from services.metering.api.wire import UsageQuery
from services.metering.store.chdb_store import ChdbStore
from tests.metering.test_usage_api import ADMIN


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_route_is_documented_and_nothing_else() -> None:
    doc = document(ROUTES)
    assert doc["openapi"] == "3.1.0"
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in ROUTES}
    for method, path in documented:
        assert match(ROUTES, method, path)[0].path == path
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []


def test_every_reference_resolves_and_the_query_parameters_are_the_wire_names() -> None:
    doc = document(ROUTES)
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    usage = doc["paths"]["/v1/manage/usage"]["get"]
    params = {p["name"]: p for p in usage["parameters"]}
    assert set(params) == {"account_id", "key_id", "model", "from", "to", "group_by", "breakdown"}
    assert params["from"]["required"] is True and not params["to"]["required"]
    assert params["group_by"]["schema"]["enum"] == ["minute", "hour", "day", "none"]
    assert set(UsageQuery.model_fields) == {"account_id", "key_id", "model", "start", "end", "group_by", "breakdown"}
    for status in ("400", "401", "404"):
        assert usage["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorView")
    row = schemas["UsageRow"]
    assert row["properties"]["cost"]["type"] == "string"  # money is never a JSON number
    assert set(row["required"]) >= {"requests", "input_tokens", "cached_input_tokens", "cache_write_tokens",
                                    "output_tokens", "reasoning_tokens", "cost", "account_id", "key_id", "model"}


async def test_the_documented_answer_has_the_fields_really_sent(store: ChdbStore) -> None:
    doc = document(ROUTES)
    schemas = doc["components"]["schemas"]
    status, body = await dispatch(Deps(store), ADMIN, "GET", "/v1/manage/usage", "from=2026-11-01&to=2026-11-02", b"")
    answer = orjson.loads(body)
    assert status == 200
    assert set(answer) == set(schemas["UsageView"]["required"]) == set(schemas["UsageView"]["properties"])
    assert set(answer["data"][0]) == set(schemas["UsageBucket"]["properties"])
    assert set(answer["totals"]) == set(schemas["UsageTotals"]["properties"])
