"""What the edge answers when no handler does: an unknown URL (404), a known URL with the wrong method
(405), or a bug (500) — in the API's own error format, like every other error.

Starlette's defaults are plain-text bodies ("Not Found"), which the SDKs surface as an unreadable
error: a client calling an endpoint this platform does not serve (``/v1/audio/speech``, Anthropic's
``/v1/messages/batches``) should read what went wrong the way the provider would have said it.
The format follows the caller: Anthropic's for ``/v1/messages...`` or a request that carries
``anthropic-version`` (every Anthropic SDK does), OpenAI's otherwise. A 500 names the request id, so
the caller has something to quote; the bug itself goes to the log, never to the client.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler, Scope

from services.common.errors import MethodNotAllowed, TollgateError, UnknownURL
from services.edge.routes.responses import Flavor, error_response

ANTHROPIC_PATH = "/v1/messages"


def flavor_of(request: Request) -> Flavor:
    return scope_flavor(request.scope)


def scope_flavor(scope: Scope) -> Flavor:
    """The API a request speaks, from its ASGI scope (the request-id middleware has no ``Request``):
    ASGI gives header names in lower case."""
    path: str = scope["path"]
    if path == ANTHROPIC_PATH or path.startswith(ANTHROPIC_PATH + "/"):
        return "anthropic"
    return "anthropic" if any(name == b"anthropic-version" for name, _ in scope["headers"]) else "openai"


def _described(request: Request) -> str:
    return f"{request.method} {request.url.path[:200]}"


async def unknown_url(request: Request, exc: Exception) -> Response:
    return error_response(UnknownURL(
        f"Unknown request URL: {_described(request)}. Please check the URL for typos; docs/api.md lists "
        "the endpoints this platform serves."
    ), flavor_of(request))


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    allowed = exc.headers.get("Allow", "") if isinstance(exc, HTTPException) and exc.headers else ""
    error = MethodNotAllowed(f"Invalid method for URL ({_described(request)}); allowed: {allowed or 'none'}.")
    if allowed:
        error.headers["allow"] = allowed
    return error_response(error, flavor_of(request))


async def server_error(request: Request, exc: Exception) -> Response:
    """Starlette logs the exception after this answer is sent (it re-raises it to the server)."""
    request_id = request.scope.get("state", {}).get("request_id")
    headers = {"x-request-id": request_id} if request_id else None
    where = f" (request id {request_id})" if request_id else ""
    error = TollgateError(f"The server had an error while processing your request{where}.")
    return error_response(error, flavor_of(request), headers)


EXCEPTION_HANDLERS: dict[int | type[Exception], ExceptionHandler] = {
    404: unknown_url,
    405: method_not_allowed,
    Exception: server_error,
}
