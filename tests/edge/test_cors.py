"""The CORS middleware as the edge configures it, for each setting of EDGE_CORS_ALLOW_ORIGINS."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.edge.cors import cors_middleware
from services.edge.settings import EdgeSettings

PREFLIGHT = {"access-control-request-method": "POST", "access-control-request-headers": "authorization"}


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True}, headers={"x-request-id": "req_1", "x-ratelimit-remaining-requests": "9"})


def _client(origins: list[str]) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/v1/chat/completions", _echo, methods=["POST"])],
                    middleware=cors_middleware(origins))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge")


async def test_a_listed_origin_is_allowed_by_name_and_another_is_not() -> None:
    async with _client(["https://app.example.com"]) as client:
        ok = await client.options("/v1/chat/completions", headers={"origin": "https://app.example.com", **PREFLIGHT})
        other = await client.options("/v1/chat/completions", headers={"origin": "https://evil.example", **PREFLIGHT})
        simple = await client.post("/v1/chat/completions", headers={"origin": "https://evil.example"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "origin" in ok.headers["vary"].lower()
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers  # the browser hides it


async def test_an_empty_list_turns_cors_off() -> None:
    async with _client([]) as client:
        preflight = await client.options("/v1/chat/completions", headers={"origin": "https://a.example", **PREFLIGHT})
        simple = await client.post("/v1/chat/completions", headers={"origin": "https://a.example"})
    assert preflight.status_code == 405 and "access-control-allow-origin" not in simple.headers


async def test_without_an_origin_nothing_is_added() -> None:
    async with _client(["*"]) as client:
        reply = await client.post("/v1/chat/completions")
    assert reply.status_code == 200 and not any(h.startswith("access-control-") for h in reply.headers)


@pytest.mark.parametrize(("raw", "origins"), [
    ("*", ["*"]),
    ("", []),
    ("https://a.example, http://localhost:3000", ["https://a.example", "http://localhost:3000"]),
])
def test_the_setting(raw: str, origins: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_KEY_HASH_SECRET", "x" * 32)
    monkeypatch.setenv("EDGE_CORS_ALLOW_ORIGINS", raw)
    assert EdgeSettings().cors_origins == origins


@pytest.mark.parametrize("raw", ["app.example.com", "https://a.example/path", "*,https://a.example", "ftp://a"])
def test_a_malformed_origin_stops_the_edge_at_start(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_KEY_HASH_SECRET", "x" * 32)
    monkeypatch.setenv("EDGE_CORS_ALLOW_ORIGINS", raw)
    with pytest.raises(ValueError, match="EDGE_CORS_ALLOW_ORIGINS"):
        EdgeSettings()
