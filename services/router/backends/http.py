"""The router's HTTP client for providers: one pooled aiohttp client, SSE read a network read at a time.

Why aiohttp and not httpx: on the hot path the client is most of the router's CPU. Measured on the
bench machine against the replaying upstream (one core, a 12-chunk streamed answer), httpx spent
2.2 ms of CPU per request and aiohttp 0.25 ms (docs/benchmarks.md). Everything provider-specific
stays in the backends; this module only moves bytes and maps transport failures to our errors.

Cancellation: leaving ``sse_batches`` early (the client went away, or fallback gave up on the
attempt) leaves aiohttp's response context with the body unread, and aiohttp then closes the
connection instead of returning it to the pool, so the provider sees the disconnect and stops.

Cookies: none are kept. Providers set them (OpenAI's Cloudflare front sets ``__cf_bm`` on every
answer), and a browser-style jar would send one customer's request's cookie along with every later
request of every customer. The gateway is stateless towards providers: each request carries only the
headers its backend builds.

Idle connections: a server closes a keep-alive connection after its idle timeout (uvicorn, and so
vLLM, after 5 s; Node after 5 s), and a request can pick that connection from the pool just as it
closes. Two defences:

- The pool drops a connection idle for ``KEEPALIVE_SECONDS`` (4 s) itself, before the common 5 s
  server timeout can race it (aiohttp's default is 15 s).
- A request that still meets a closing connection fails before any answer, without having reached
  the provider's application; it is sent once more on a connection opened for it (aiohttp resends
  only idempotent methods, and ours are POSTs). Not on the next pooled one: aiohttp hands out the
  least recently used connection first, and connections released together (after a burst) are closed
  by the server together, so the next pooled one is usually closing too. A second failure is the
  provider's, and goes to fallback like any other.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

import aiohttp
import structlog
from prometheus_client import Counter

from services.common.errors import TollgateError
from services.router.backends import provider_errors as pe
from services.router.backends.sse import Event, SSEDecoder

log = structlog.get_logger(__name__)
RESENT = Counter(
    "tollgate_router_upstream_resent_total",
    "provider requests sent again because the connection dropped before any answer (idle keep-alive)",
)
# what a connection closed under a request raises: a clean close (FIN), or a reset (ECONNRESET)
DROPPED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
CONNECT_TIMEOUT = 5.0
KEEPALIVE_SECONDS = 4.0  # below the 5 s idle timeout of uvicorn (vLLM) and Node servers
ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ProviderHTTP:
    """The HTTP client every provider backend shares: a keep-alive pool, and a second client that
    opens a connection per request, for the one resend after a pooled connection dropped."""

    pooled: aiohttp.ClientSession
    fresh: aiohttp.ClientSession

    async def close(self) -> None:
        await self.pooled.close()
        await self.fresh.close()

    async def __aenter__(self) -> ProviderHTTP:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def new_provider_http(max_connections: int) -> ProviderHTTP:
    """Build the shared client (in the running loop). No environment proxies or netrc: provider
    traffic goes where the catalog says and nowhere else."""
    pooled = aiohttp.TCPConnector(
        limit=max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS,
        enable_cleanup_closed=True,
    )
    fresh = aiohttp.TCPConnector(limit=0, force_close=True, enable_cleanup_closed=True)
    return ProviderHTTP(_client(pooled), _client(fresh))


def _client(connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
        trust_env=False,
        auto_decompress=True,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def step_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """Bound each network step (connect, first byte, the gap between two reads), not the whole
    generation: a long answer is fine as long as it keeps flowing."""
    return aiohttp.ClientTimeout(total=None, sock_connect=min(seconds, CONNECT_TIMEOUT), sock_read=seconds)


async def get_status(
    http: ProviderHTTP, url: str, headers: Mapping[str, str], timeout: float
) -> int:
    """Status of a small GET (readiness probes); raises what aiohttp raises."""
    async with http.pooled.get(
        url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
    ) as response:
        await response.read()
        return response.status


async def sse_batches(
    http: ProviderHTTP, url: str, body: bytes, headers: Mapping[str, str],
    timeout: aiohttp.ClientTimeout, secrets: Iterable[str],
) -> AsyncGenerator[list[Event], None]:
    """POST ``body`` and yield, per network read, the events that read completed (never empty).

    A non-2xx answer raises the mapped provider error; a transport failure raises ours.
    """
    try:
        async with await _post(http, url, body, headers, timeout) as response:
            if not 200 <= response.status < 300:
                raise await _error(response, tuple(secrets))
            decoder = SSEDecoder()
            async for data in response.content.iter_any():
                events = decoder.feed(data)
                if events:
                    yield events
            tail = decoder.close()
            if tail:
                yield tail
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise pe.error_from_transport(exc) from exc


async def _post(
    http: ProviderHTTP, url: str, body: bytes, headers: Mapping[str, str], timeout: aiohttp.ClientTimeout,
) -> aiohttp.ClientResponse:
    """POST and wait for the status line, resending once, on a new connection, if a pooled
    connection dropped before it."""
    try:
        return await http.pooled.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except DROPPED as exc:
        if isinstance(exc, aiohttp.ClientConnectorError):
            raise  # could not connect at all: nothing to gain from the same address right away
        RESENT.inc()
        log.info("upstream_connection_dropped_before_answer_resending", error=type(exc).__name__)
    return await http.fresh.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)


async def _error(response: aiohttp.ClientResponse, secrets: tuple[str, ...]) -> TollgateError:
    """Read (a bounded part of) an error response's body and map it; the body may be huge HTML."""
    chunks: list[bytes] = []
    size = 0
    while size < ERROR_BODY_LIMIT:
        chunk = await response.content.readany()
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return pe.error_from_response(response.status, response.headers, b"".join(chunks), secrets)
