"""The OpenAPI 3.1 document of the management API, generated from the route table and the pydantic
models (OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic emits), so every route
served is described with the exact request and response shapes that are validated and rendered."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from services.billing.manage.views import ErrorView

if TYPE_CHECKING:
    from services.billing.manage.routes import Route

REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Invalid request (nothing was changed)", 401: "Missing or unknown key",
    403: "The caller may not do this", 404: "No such resource, or not visible to the caller",
    409: "Conflicts with the resource's state (e.g. the key is revoked)",
}
DESCRIPTION = """Accounts, plans and API keys of a Tollgate platform.

Authenticate with `Authorization: Bearer <key>`: the operator's admin key (everything), or a key of
kind `management`, which acts on its own account and the accounts below it only. Money is a decimal
string of US dollars (`"20.00"`), never a JSON number. Errors are `{"error": {"message", "type",
"param", "code"}}`, and a request that fails changes nothing."""


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop,
         **({"description": prop["description"]} if "description" in prop else {})}
        for name, prop in schema.get("properties", {}).items()
    ]


def _json(ref: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": ref}}


@cache
def _build(routes: tuple[Route, ...]) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorView, "serialization")]
    for route in routes:
        if route.body is not None:
            wanted.append((route.body, "validation"))
        if route.response is not None:
            wanted.append((route.response, "serialization"))
    refs, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    error = refs[(ErrorView, "serialization")]
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        parameters = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in route.path.split("/") if part.startswith("{")
        ] + _query_parameters(route.query)
        answer = refs[(route.response, "serialization")] if route.response is not None else {"type": "object"}
        operation: dict[str, Any] = {
            "operationId": route.handler.__name__.strip("_") or "openapi",
            "summary": route.summary,
            "tags": [route.tag] if route.tag else [],
            "parameters": parameters,
            "responses": {
                str(route.status): {"description": "OK", "content": _json(answer)},
                **{str(s): {"description": _STATUS_TEXT.get(s, "Error"), "content": _json(error)}
                   for s in route.errors},
            },
        }
        if route.public:
            operation["security"] = []  # no key needed
        if route.body is not None:
            # an empty body reads as {}: the body is required only when the model has required fields
            operation["requestBody"] = {
                "required": bool(route.body.model_json_schema().get("required")),
                "content": _json(refs[(route.body, "validation")]),
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tollgate management API", "version": "1.0.0", "description": DESCRIPTION},
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "the admin key, or a management key (kind=management) of an account",
            }},
        },
    }


def document(routes: Sequence[Route]) -> dict[str, Any]:
    return _build(tuple(routes))
