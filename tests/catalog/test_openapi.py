"""The catalog's OpenAPI part describes exactly the routes served, its schemas resolve, and it merges
into the edge's public document without changing what any of its references mean."""

from __future__ import annotations

from typing import Any

from services.billing.manage.openapi import document as billing_document
from services.billing.manage.routes import ROUTES as BILLING_ROUTES
from services.catalog.manage.openapi import document
from services.catalog.manage.routes import ROUTES, match
from services.edge.routes.manage import merge_documents


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _schema(doc: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = doc["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]
    return found


def test_every_route_served_is_documented_and_nothing_else() -> None:
    doc = document(ROUTES)
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, r.path.replace("*}", "}")) for r in ROUTES}
    for method, path in documented:
        model_id = "a/b" if path.startswith("/v1/manage/models") else "chg_1"  # model ids may hold a "/"
        concrete = path.replace("{id}", model_id).replace("{alias}", "x/y").replace("{deployment_id}", "d")
        route, _ = match(method, concrete)
        assert route.path.replace("*}", "}") == path
    assert all(p.startswith(("/v1/manage/models", "/v1/manage/catalog", "/openapi.json")) for p in doc["paths"])


def test_schemas_resolve_and_money_is_a_string() -> None:
    doc = document(ROUTES)
    for ref in _refs(doc):
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref
    create = doc["paths"]["/v1/manage/models/{id}/prices"]["post"]
    body = _schema(doc, create["requestBody"]["content"]["application/json"]["schema"])
    assert set(body["required"]) == {"input", "output"} and body["additionalProperties"] is False
    assert body["properties"]["input"]["type"] == "string"
    put = doc["paths"]["/v1/manage/models/{id}"]["put"]
    assert {"200", "201", "400", "403", "409"} <= set(put["responses"])


def test_merging_into_the_public_document_keeps_every_reference_meaning_the_same() -> None:
    ours, billing = document(ROUTES), billing_document(BILLING_ROUTES)
    merged = merge_documents(billing, ours)
    for name, schema in ours["components"]["schemas"].items():
        assert merged["components"]["schemas"][name] == schema, f"{name} means something else after the merge"
    assert set(ours["paths"]) - {"/openapi.json"} <= set(merged["paths"])
