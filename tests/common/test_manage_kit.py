"""The management-API kit on a toy service: what any service gets from one route table (routing with
multi-segment ids, validation, the error shape, public routes, the OpenAPI document)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Histogram
from pydantic import BaseModel, ConfigDict

from services.common.errors import AuthenticationFailed
from services.common.manage.context import Call, Caller, Reply
from services.common.manage.dispatch import Dispatcher
from services.common.manage.openapi import ApiInfo, document
from services.common.manage.routing import OPENAPI_PATH, Route


@dataclass(frozen=True)
class Deps:
    greeting: str


class Greet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str


class Greeting(BaseModel):
    text: str


async def get_thing(deps: Deps, call: Call) -> Reply:
    return Reply(200, Greeting(text=f"{deps.greeting} {call.params['id']}"))


async def greet(deps: Deps, call: Call) -> Reply:
    if call.body_as(Greet).name == "down":
        raise OSError("the database is away")
    return Reply(201, Greeting(text=f"{deps.greeting} {call.body_as(Greet).name} as {call.caller.audit}"))


async def _openapi(deps: Deps, call: Call) -> Reply:
    return Reply(200, document(ROUTES, INFO))


INFO = ApiInfo(title="Toy", description="A toy.", auth="any key", statuses={404: "No such thing"},
               operation_prefix="toy_")
ROUTES: tuple[Route[Deps], ...] = (
    Route("GET", "/things/{id*}", get_thing, "Get a thing", Greeting),
    Route("POST", "/things/{id*}/greet", greet, "Greet", Greeting, body=Greet, status=201),
    Route("GET", OPENAPI_PATH, _openapi, "The document", None, errors=(), public=True),
)
LATENCY = Histogram("toy_manage_seconds", "toy", ["route", "status"], registry=CollectorRegistry())
dispatch = Dispatcher(ROUTES, LATENCY, "The toy database is unavailable; retry shortly.")
ADMIN = Caller(account_id=None)


async def call(caller: Caller | AuthenticationFailed, method: str, path: str, body: bytes = b"",
               query: str = "") -> tuple[int, Any]:
    status, answer = await dispatch(Deps("hello"), caller, method, path, query, body, "req_1")
    return status, orjson.loads(answer)


async def test_routes_validate_and_answer() -> None:
    assert await call(ADMIN, "get", "/things/a/b") == (200, {"text": "hello a/b"})
    assert await call(Caller("acct_1", "key_1"), "POST", "/things/a/b/greet", b'{"name": "x"}') == (
        201, {"text": "hello x as acct_1/key_1"})
    status, answer = await call(ADMIN, "POST", "/things/a/greet", b'{"name": "x", "extra": 1}')
    assert status == 400 and answer["error"]["param"] == "extra"
    status, answer = await call(ADMIN, "GET", "/things/a", query="x=1")
    assert status == 400 and answer["error"]["message"] == "Unrecognized request argument supplied: x"


async def test_every_failure_is_the_error_shape() -> None:
    status, answer = await call(ADMIN, "GET", "/nothing")
    assert status == 404 and answer["error"]["code"] == "unknown_url"
    status, answer = await call(ADMIN, "DELETE", "/things/a/greet")
    assert status == 405 and answer["error"]["message"].endswith("allowed: POST.")
    status, answer = await call(ADMIN, "POST", "/things/a/greet", b'{"name": "down"}')
    assert status == 503 and answer["error"]["message"] == "The toy database is unavailable; retry shortly."
    status, _ = await call(AuthenticationFailed("no key"), "GET", "/things/a")
    assert status == 401


async def test_the_document_is_public_and_describes_the_table() -> None:
    status, doc = await call(AuthenticationFailed("no key"), "GET", OPENAPI_PATH)
    assert status == 200 and set(doc["paths"]) == {"/things/{id}", "/things/{id}/greet", OPENAPI_PATH}
    get = doc["paths"]["/things/{id}"]["get"]
    assert get["operationId"] == "toy_get_thing" and get["responses"]["404"]["description"] == "No such thing"
    assert get["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorView")
    assert doc["paths"][OPENAPI_PATH]["get"]["security"] == []
