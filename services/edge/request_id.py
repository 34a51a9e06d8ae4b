"""Every response carries ``x-request-id``: the one id of that request in events, logs and traces.
A request in Anthropic's API (``/v1/messages``, or any carrying ``anthropic-version``, as every
Anthropic SDK sends it: ``routes.fallbacks.scope_flavor``) also gets it as ``request-id``, the header
Anthropic sends and its SDKs read (``message._request_id``, an error's ``request_id``).

Pure ASGI (not BaseHTTPMiddleware) so that streaming responses are not buffered.
"""

from __future__ import annotations

import secrets

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.edge.routes.fallbacks import scope_flavor


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        ids = [(b"x-request-id", request_id.encode())]
        if scope_flavor(scope) == "anthropic":
            ids.append((b"request-id", ids[0][1]))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *ids]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
