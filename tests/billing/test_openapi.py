"""The OpenAPI document describes exactly the routes served, and its schemas resolve and match what
the handlers really answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.billing.manage.openapi import document
from services.billing.manage.routes import ROUTES, match
from services.billing.manage.views import key_view, with_secret

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_route_served_is_documented_and_nothing_else() -> None:
    doc = document(ROUTES)
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in ROUTES}
    for method, path in documented:
        route, _ = match(method, path.replace("{id}", "x_1"))
        assert route.path == path
    assert doc["openapi"] == "3.1.0" and doc["security"] == [{"bearerAuth": []}]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"]
    }


def test_every_reference_resolves_and_bodies_and_answers_are_described() -> None:
    doc = document(ROUTES)
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    create_key = doc["paths"]["/v1/manage/keys"]["post"]
    body = schemas[create_key["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(body["required"]) == {"account_id", "plan_id", "name"} and body["additionalProperties"] is False
    answer = schemas[create_key["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert "key" in answer["required"] and "key_hash" not in answer["properties"]
    plan = schemas[doc["paths"]["/v1/manage/plans"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    money = plan["properties"]["budget_amount"]["anyOf"][0]
    assert money["type"] == "string"  # money is never a JSON number
    assert {p["name"] for p in doc["paths"]["/v1/manage/keys"]["get"]["parameters"]} == {
        "account_id", "status", "kind", "limit", "after"
    }
    assert create_key["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorView")


def test_the_documented_key_answer_has_the_fields_really_sent() -> None:
    row = {
        "id": "key_1", "account_id": "acct_1", "plan_id": "plan_1", "name": "n", "prefix": "tg-abcdefgh",
        "kind": "inference", "status": "active", "expires_at": None, "overrides": '{"max_concurrency": 1}',
        "rotated_from": None, "last_used_at": None, "created_at": NOW, "updated_at": NOW,
        "requests_per_minute": 5, "tokens_per_minute": None, "max_concurrency": 3, "budget_micros": 1_500_000,
        "budget_window_seconds": 7200, "allowed_models": ["a"],
    }
    sent = with_secret(key_view(row), "tg-secret").model_dump(mode="json")
    schema = document(ROUTES)["components"]["schemas"]["KeyWithSecret"]
    assert set(sent) == set(schema["properties"]) == set(schema["required"])
    assert sent["limits"] == {"max_concurrency": 1}
    assert sent["effective_limits"] == {
        "requests_per_minute": 5, "tokens_per_minute": None, "max_concurrency": 1, "budget_amount": "1.500000",
        "budget_window": "2h", "allowed_models": ["a"],
    }
