"""The OpenAPI 3.1 document of a management route table, generated from the table and its pydantic
models (OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic emits), so every route
served is described with the exact request and response shapes that are validated and rendered.

Each service says what is its own in an ``ApiInfo``; the edge merges the services' ``paths`` and
``components`` into the public document at ``/openapi.json``, so every part describes errors with the
one shared ``ErrorView``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from services.common.manage.routing import DepsT, Route
from services.common.manage.views import ErrorView

REF = "#/components/schemas/{model}"


@dataclass(frozen=True, eq=False)  # one per service, hashed by identity: documents are cached per info
class ApiInfo:
    title: str
    description: str
    auth: str  # who the bearer key may be
    statuses: Mapping[int, str]  # what a status means in this API; otherwise "OK" / "Error"
    operation_prefix: str = ""  # keeps operationIds unique once the edge merges the parts


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


def _schemas(routes: tuple[Route[Any], ...]) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """Every model the routes name, as (reference per (model, mode), the definitions)."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorView, "serialization")]
    for route in routes:
        if route.body is not None:
            wanted.append((route.body, "validation"))
        if route.response is not None:
            wanted.append((route.response, "serialization"))
    refs, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    return dict(refs), defs.get("$defs", {})


@cache
def _build(routes: tuple[Route[Any], ...], info: ApiInfo) -> dict[str, Any]:
    refs, defs = _schemas(routes)
    error = refs[(ErrorView, "serialization")]
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = route.path.replace("*}", "}")  # a multi-segment parameter is still one parameter
        parameters = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in path.split("/") if part.startswith("{")
        ] + _query_parameters(route.query)
        answer = refs[(route.response, "serialization")] if route.response is not None else {"type": "object"}
        operation: dict[str, Any] = {
            "operationId": info.operation_prefix + (route.handler.__name__.strip("_") or "openapi"),
            "summary": route.summary,
            "tags": [route.tag] if route.tag else [],
            "parameters": parameters,
            "responses": {
                **{str(s): {"description": info.statuses.get(s, "OK"), "content": _json(answer)}
                   for s in (route.status, *route.also)},
                **{str(s): {"description": info.statuses.get(s, "Error"), "content": _json(error)}
                   for s in route.errors},
            },
        }
        if route.description:
            operation["description"] = route.description
        if route.public:
            operation["security"] = []  # no key needed
        if route.body is not None:
            # an empty body reads as {}: the body is required only when the model has required fields
            operation["requestBody"] = {
                "required": bool(route.body.model_json_schema().get("required")),
                "content": _json(refs[(route.body, "validation")]),
            }
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": info.title, "version": "1.0.0", "description": info.description},
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": info.auth}},
        },
    }


def document(routes: Sequence[Route[DepsT]], info: ApiInfo) -> dict[str, Any]:
    """The document (built once per route table and info, then shared: do not change it)."""
    return _build(tuple(routes), info)
