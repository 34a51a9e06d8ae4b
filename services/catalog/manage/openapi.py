"""The OpenAPI 3.1 document of the catalog's routes, generated from the route table and the pydantic
models (OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic emits). The edge merges its
``paths`` and ``components`` into the public document at ``/openapi.json``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from services.catalog.manage.views import ErrorView

if TYPE_CHECKING:
    from services.catalog.manage.routes import Route

REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Invalid request (nothing was changed)", 401: "Missing or unknown key",
    403: "Only the platform operator may do this", 404: "No such model, alias, deployment or change",
    409: "Conflicts with the catalog's state (an id taken, a price version that exists, a decided change)",
}
DESCRIPTION = """Models, deployments, versioned prices, aliases and deprecations of a Tollgate platform,
the sync from provider feeds and its review queue.

Prices are decimal strings of US dollars per 1M tokens (`"2.50"`), never JSON numbers; each price is
an immutable version with an `effective_from`. Every change is published on catalog.v1 before the
answer (edges and routers see it within 2 s) and recorded in the audit trail."""


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
        path = route.path.replace("*}", "}")
        parameters = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in path.split("/") if part.startswith("{")
        ] + _query_parameters(route.query)
        answer = refs[(route.response, "serialization")] if route.response is not None else {"type": "object"}
        ok = {str(s): {"description": "Created" if s == 201 else "OK", "content": _json(answer)}
              for s in (route.status, *route.also)}
        operation: dict[str, Any] = {
            "operationId": "catalog_" + (route.handler.__name__.strip("_") or "openapi"),
            "summary": route.summary,
            "tags": [route.tag] if route.tag else [],
            "parameters": parameters,
            "responses": {
                **ok,
                **{str(s): {"description": _STATUS_TEXT.get(s, "Error"), "content": _json(error)}
                   for s in route.errors},
            },
        }
        if route.public:
            operation["security"] = []
        if route.body is not None:
            operation["requestBody"] = {
                "required": bool(route.body.model_json_schema().get("required")),
                "content": _json(refs[(route.body, "validation")]),
            }
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tollgate catalog management API", "version": "1.0.0", "description": DESCRIPTION},
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "the admin key (every route), or a management key of an account (reads)",
            }},
        },
    }


def document(routes: Sequence[Route]) -> dict[str, Any]:
    return _build(tuple(routes))
