"""The router's HTTP client for providers: one keep-alive pool (``http_client``), SSE read a network
read at a time, transport failures mapped to our errors. Everything provider-specific stays in the
backends; this module only moves bytes.

Why its own HTTP/1.1 client: on the hot path the provider call is most of the router's CPU. Measured
on the bench machine against the replaying upstream (one core, c=16, a 12-chunk streamed answer,
this module's path around the client), httpx spent 2.2 ms of CPU per answer, aiohttp 0.26 ms and
``http_client`` 0.19 ms (``make bench``'s provider-client phase, docs/benchmarks.md).

Cancellation: leaving ``sse_batches`` early (the client went away, or fallback gave up on the
attempt) leaves the answer unread, and its connection is then closed instead of returned to the
pool, so the provider sees the disconnect and stops.

Cookies: none are kept. Providers set them (OpenAI's Cloudflare front sets ``__cf_bm`` on every
answer), and a browser-style jar would send one customer's request's cookie along with every later
request of every customer. The gateway is stateless towards providers: each request carries only the
headers its backend builds.

Idle connections: a server closes a keep-alive connection after its idle timeout (uvicorn, and so
vLLM, after 5 s; Node after 5 s), and a request can pick that connection from the pool just as it
closes. Three defences:

- The pool drops a connection idle for ``KEEPALIVE_SECONDS`` (4 s) itself, before the common 5 s
  server timeout can race it.
- It hands out the most recently used idle connection first, the one furthest from its timeout.
- A request that still meets a pooled connection closing fails before any byte of an answer, without
  having reached the provider's application; it is sent once more, on a connection opened for it.
  Not on the next pooled one: connections released together (after a burst) are closed by the
  server together. A second failure, or a new connection closed unanswered, is the provider's, and
  goes to fallback like any other.

Silence: a provider may stay silent for ``before_output`` seconds until the answer's first output (a
reasoning model thinks before it writes, and OpenAI's API sends nothing of the thinking), and for
``after_output`` seconds at a time once it writes. ``ReadWatch`` keeps both with one timer per
request, re-armed only when it fires, and a clock read per network read. Only time spent waiting for
the provider counts, never the time the reader takes with what it was given. A silence over the
limit is ``UpstreamTimeout``: before the first byte reached the client, fallback takes it like any
other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass

import orjson
import structlog
from prometheus_client import Counter, Gauge

from services.common.errors import TollgateError, UpstreamError
from services.router.backends import provider_errors as pe
from services.router.backends.http_client import ConnectionDropped, Pool, PoolFull, Response, TransportError
from services.router.backends.sse import Event, SSEDecoder

log = structlog.get_logger(__name__)
RESENT = Counter(
    "tollgate_router_upstream_resent_total",
    "provider requests sent again because the connection dropped before any answer (idle keep-alive)",
)
CONNECTIONS = Gauge(
    "tollgate_router_provider_connections", "connections to providers, open (idle ones included) and idle",
    ["state"],
)
WAITING = Gauge(
    "tollgate_router_provider_requests_waiting",
    "provider requests waiting for a connection: all of ROUTER_PROVIDER_MAX_CONNECTIONS are in use",
)
SHED = Counter(
    "tollgate_router_provider_requests_shed",
    "provider requests that waited ROUTER_PROVIDER_POOL_WAIT_SECONDS for a connection and were answered "
    "as overloaded instead (the next deployment, else a 503 with Retry-After)",
)
CONNECT_TIMEOUT = 5.0
KEEPALIVE_SECONDS = 4.0  # below the 5 s idle timeout of uvicorn (vLLM) and Node servers
ERROR_BODY_LIMIT = 64 * 1024
LARGE_ANSWER_BYTES = 1024 * 1024


ProviderHTTP = Pool  # what every provider backend shares


def new_provider_http(max_connections: int, slot_wait: float | None = None) -> ProviderHTTP:
    """Build the shared client. No environment proxies or netrc: provider traffic goes where the
    catalog says and nowhere else. ``slot_wait``: how long a request waits for a connection while all
    ``max_connections`` are in use, before it is answered as overloaded."""
    return Pool(
        max_connections, keepalive=KEEPALIVE_SECONDS, connect_timeout=CONNECT_TIMEOUT, slot_wait=slot_wait
    )


def export_metrics(http: ProviderHTTP) -> None:
    """Read the pool's state when metrics are scraped (nothing on the request path): a router whose
    requests wait for connections needs a higher ``ROUTER_PROVIDER_MAX_CONNECTIONS`` (or more
    routers), and the wait would otherwise show only as provider latency."""
    CONNECTIONS.labels("open").set_function(lambda: http.open_connections)
    CONNECTIONS.labels("idle").set_function(lambda: http.idle_connections)
    WAITING.set_function(lambda: http.waiting_requests)


@dataclass(frozen=True)
class ReadTimeouts:
    """The longest silence of a provider, in seconds: until the answer's first output, and after it.
    Neither bounds the whole generation: a long answer is fine as long as it keeps flowing."""

    before_output: float
    after_output: float

    @property
    def connect_timeout(self) -> float:
        """The connect step's own limit (the reads are ``ReadWatch``'s)."""
        return min(self.before_output, CONNECT_TIMEOUT)


DEFAULT_TIMEOUTS = ReadTimeouts(before_output=300.0, after_output=60.0)  # also the router settings' defaults


class ReadWatch:
    """The silence limit of one provider request (see the module's docstring), driven by
    ``sse_batches``; the backend reading the answer says when its first output came (``answering``).

    It lives in the request's task: when a wait runs over, that task is cancelled inside the wait, and
    ``timed_out`` tells ``sse_batches`` that the cancellation was this timeout."""

    def __init__(self, timeouts: ReadTimeouts) -> None:
        self.timeouts = timeouts
        self._limit = timeouts.before_output
        self._waiting_since: float | None = None  # None while the reader holds what it was given
        self._task: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._fired = False

    def answering(self) -> None:
        """The answer's first output arrived: from now on the shorter limit applies."""
        self._limit = self.timeouts.after_output

    def begin(self) -> None:
        """The request is being sent: waiting from now on."""
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._waiting_since = loop.time()
        self._timer = loop.call_at(self._waiting_since + self._limit, self._check)

    def waiting(self, now: float) -> None:
        self._waiting_since = now

    def holding(self) -> None:
        """The reader has the events: its time is not the provider's silence."""
        self._waiting_since = None

    def timed_out(self) -> bool:
        """With the task's ``CancelledError`` in hand: whether it was this timeout alone (then the
        task is no longer cancelling); False when the caller was cancelled too, which propagates."""
        return self._fired and self._task is not None and self._task.uncancel() == 0

    def end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        now, since = loop.time(), self._waiting_since
        if since is not None and now - since >= self._limit:
            self._fired = True
            if self._task is not None:
                self._task.cancel()
            return
        self._timer = loop.call_at((since if since is not None else now) + self._limit, self._check)


async def get_status(
    http: ProviderHTTP, url: str, headers: Mapping[str, str], timeout: float
) -> int:
    """Status of a small GET (readiness probes); raises ``TransportError`` or ``TimeoutError``."""
    async with asyncio.timeout(timeout):
        async with await http.request("GET", url, headers, connect_timeout=timeout) as response:
            await response.read(ERROR_BODY_LIMIT)
            return response.status


async def sse_batches(
    http: ProviderHTTP, url: str, body: bytes, headers: Mapping[str, str], watch: ReadWatch,
    secrets: Iterable[str],
) -> AsyncGenerator[list[Event], None]:
    """POST ``body`` and yield, per network read, the events that read completed (never empty).

    A non-2xx answer raises the mapped provider error; a transport failure, or a silence longer than
    ``watch`` allows, raises ours.
    """
    clock = asyncio.get_running_loop().time
    watch.begin()  # connect, the status line and the first event are all waiting
    try:
        async with await _post(http, url, body, headers, watch.timeouts.connect_timeout) as response:
            if not 200 <= response.status < 300:
                raise await _error(response, tuple(secrets))
            decoder = SSEDecoder()
            while data := await response.read_some():
                events = decoder.feed(data)
                if events:
                    watch.holding()
                    yield events
                watch.waiting(clock())
            tail = decoder.close()
            if tail:
                yield tail
    except (TransportError, TimeoutError) as exc:
        raise _transport_error(exc) from exc
    except asyncio.CancelledError:
        if not watch.timed_out():
            raise
        raise pe.error_from_transport(TimeoutError()) from None
    finally:
        watch.end()


def _transport_error(exc: TransportError | TimeoutError) -> TollgateError:
    if isinstance(exc, PoolFull):
        SHED.inc()
    return pe.error_from_transport(exc)


async def post_json(
    http: ProviderHTTP, url: str, body: dict[str, object], headers: Mapping[str, str], timeout: float,
    secrets: Iterable[str], limit: int = ERROR_BODY_LIMIT,
) -> object:
    """POST ``body`` as JSON and return the answer's JSON (None when it is not JSON, or longer than
    ``limit`` bytes), in ``timeout`` seconds at most. A non-2xx answer raises the mapped provider
    error; a transport failure raises ours."""
    try:
        async with asyncio.timeout(timeout):
            connect = min(timeout, CONNECT_TIMEOUT)
            async with await _post(http, url, orjson.dumps(body), headers, connect) as response:
                if not 200 <= response.status < 300:
                    raise await _error(response, tuple(secrets))
                raw = await response.read(limit)
    except (TransportError, TimeoutError) as exc:
        raise _transport_error(exc) from exc
    if len(raw) > limit:
        return None
    try:  # a large answer (embeddings) is parsed off the event loop, which other requests need meanwhile
        if len(raw) > LARGE_ANSWER_BYTES:
            return await asyncio.to_thread(orjson.loads, raw)
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


async def post_for_count(
    http: ProviderHTTP, url: str, body: dict[str, object], headers: Mapping[str, str], timeout: float,
    secrets: Iterable[str], field: str,
) -> int:
    """The whole number ``post_json``'s answer carries in ``field`` (a token count); an answer without
    one raises ours."""
    answer = await post_json(http, url, body, headers, timeout, secrets)
    count = answer.get(field) if isinstance(answer, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise UpstreamError("the upstream provider sent no token count", code=pe.UPSTREAM_BAD_RESPONSE)
    return count


async def _post(
    http: ProviderHTTP, url: str, body: bytes, headers: Mapping[str, str], connect_timeout: float,
) -> Response:
    """POST and wait for the answer's head, sending once more, on a new connection, if the pooled
    connection it went out on closed before any byte of an answer."""
    try:
        return await http.request("POST", url, headers, body, connect_timeout=connect_timeout)
    except ConnectionDropped as exc:
        RESENT.inc()
        log.info("upstream_connection_dropped_before_answer_resending", error=type(exc).__name__)
    return await http.request("POST", url, headers, body, fresh=True, connect_timeout=connect_timeout)


async def _error(response: Response, secrets: tuple[str, ...]) -> TollgateError:
    """Read (a bounded part of) an error response's body and map it; the body may be huge HTML."""
    return pe.error_from_response(response.status, response.headers, await response.read(ERROR_BODY_LIMIT),
                                  secrets)
