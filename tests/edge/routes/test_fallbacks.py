"""The edge's answers when no handler answers: unknown URL, wrong method, a bug — each in the API's own
error format (Starlette's defaults are plain text), with the request id."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.edge.request_id import RequestIdMiddleware
from services.edge.routes.fallbacks import EXCEPTION_HANDLERS


async def _fails(request: Request) -> Response:
    raise RuntimeError("secret internals: prompt text")


async def _ok(request: Request) -> Response:
    return Response(b"{}")


def _client() -> httpx.AsyncClient:
    app = Starlette(
        routes=[Route("/v1/chat/completions", _ok, methods=["POST"]), Route("/v1/messages", _fails, methods=["POST"]),
                Route("/v1/completions", _fails, methods=["POST"])],
        middleware=[Middleware(RequestIdMiddleware)], exception_handlers=EXCEPTION_HANDLERS,
    )
    # the server error middleware re-raises after answering (for the server's log): keep the answer
    return httpx.AsyncClient(transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://edge")


async def test_an_unknown_url_is_openais_404_or_anthropics_by_the_caller() -> None:
    async with _client() as http:
        openai = await http.post("/v1/audio/speech", json={"input": "hi"})
        anthropic = await http.post("/v1/messages/count_tokens", json={})
        by_header = await http.post("/v1/complete", headers={"anthropic-version": "2023-06-01"})
    assert openai.status_code == 404 and openai.headers["x-request-id"].startswith("req_")
    assert openai.json() == {"error": {
        "message": "Unknown request URL: POST /v1/audio/speech. Please check the URL for typos; docs/api.md "
                   "lists the endpoints this platform serves.",
        "type": "invalid_request_error", "param": None, "code": "unknown_url"}}
    assert anthropic.status_code == 404 and anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "not_found_error"
    assert "POST /v1/messages/count_tokens" in anthropic.json()["error"]["message"]
    assert by_header.status_code == 404 and by_header.json()["error"]["type"] == "not_found_error"


async def test_a_wrong_method_is_405_with_allow() -> None:
    async with _client() as http:
        reply = await http.get("/v1/chat/completions")
    assert reply.status_code == 405 and reply.headers["allow"] == "POST"
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "method_not_allowed"
    assert error["message"] == "Invalid method for URL (GET /v1/chat/completions); allowed: POST."


async def test_a_bug_is_a_500_in_the_api_format_naming_the_request_and_nothing_else() -> None:
    async with _client() as http:
        openai = await http.post("/v1/completions", json={})
        anthropic = await http.post("/v1/messages", json={})
    assert openai.status_code == 500 and anthropic.status_code == 500
    request_id = openai.headers["x-request-id"]
    assert openai.json()["error"] == {
        "message": f"The server had an error while processing your request (request id {request_id}).",
        "type": "api_error", "param": None, "code": None}
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == "api_error"
    assert "internals" not in openai.text + anthropic.text
