"""Browsers calling the public API from another origin (CORS), as OpenAI's and Anthropic's APIs allow.

An application that calls the API from a web page (the SDKs' ``dangerouslyAllowBrowser``, or plain
``fetch``) needs its preflight answered and the response headers it reads exposed: the request id, the
rate-limit headers, ``retry-after``, a model's deprecation notice. Keys travel in headers, never in
cookies, so credentials mode stays off: a page can only use a key it already holds, and ``*`` is safe
as the default. ``EDGE_CORS_ALLOW_ORIGINS`` narrows it to a list of origins, or turns it off (empty).

Anthropic's own rule is kept for the Messages API: a browser request (one with an ``Origin``) must say
``anthropic-dangerous-direct-browser-access: true``, which the Anthropic SDK sends when it is allowed to
run in a browser; otherwise it is refused with Anthropic's 401 (``check_browser_opt_in``).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from services.common.errors import AuthenticationFailed

EXPOSED_HEADERS = (
    "x-request-id", "retry-after", "x-should-retry",
    "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
    "deprecation", "sunset", "x-tollgate-replacement",
    # what the Anthropic SDK reads in a browser (dangerouslyAllowBrowser)
    "request-id", "anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset",
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PREFLIGHT_MAX_AGE_SECONDS = 7200  # the most Chromium keeps a preflight answer
ANTHROPIC_BROWSER_HEADER = "anthropic-dangerous-direct-browser-access"


class _CrossOrigin(CORSMiddleware):
    """Starlette's, with the requests that carry no ``Origin`` (every server-side SDK call) passed on
    after a scan of the raw header names, before any header object is built."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(name == b"origin" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def cors_middleware(allow_origins: list[str]) -> list[Middleware]:
    """The middleware for these origins (``["*"]``: any), or none when the list is empty."""
    if not allow_origins:
        return []
    return [Middleware(
        _CrossOrigin, allow_origins=allow_origins, allow_methods=METHODS, allow_headers=["*"],
        expose_headers=EXPOSED_HEADERS, max_age=PREFLIGHT_MAX_AGE_SECONDS,
    )]


def check_browser_opt_in(headers: Headers, header: str = ANTHROPIC_BROWSER_HEADER) -> None:
    """A request from a web page (it has an ``Origin``) puts its key in the page: Anthropic serves it
    only when the page says it means to, and refuses it in these words otherwise."""
    if "origin" in headers and headers.get(header, "").lower() != "true":
        raise AuthenticationFailed(f"CORS requests must set '{header}' header")
