"""A small pooled HTTP/1.1 client for provider calls: asyncio protocols and llhttp (``httptools``).

Why not aiohttp: on the serving path the provider call is the largest part of the router's CPU, and
most of aiohttp's cost there is its generality (URL objects, multidicts, tracing, cookie and proxy
handling, a stream reader per response), not moving bytes. Measured on the bench machine (one core,
c=16, a 12-chunk streamed answer from the replaying upstream, SSE decoded, inside the router's watch
and SSE loop): aiohttp 257-265 µs of CPU per answer, this client 186-192 µs (``make bench``'s
provider-client phase, docs/benchmarks.md). The router needs little of
HTTP: POST and GET, a JSON body, a streamed answer read a network read at a time, keep-alive.

What it does, and what it leaves out on purpose:

- HTTP/1.1 only, ``http`` and ``https`` (TLS verified against the system's trust store, or the
  ``ssl.SSLContext`` given); no proxies, no redirects, no cookies: provider traffic goes where the
  catalog says, and one customer's answer must never leave state behind for the next request.
- Bodies framed by ``content-length``, chunked, or ended by the server's close. ``accept-encoding:
  identity`` is sent; a server that compresses anyway (gzip, deflate) is decoded, anything else is a
  ``BadResponse``.
- A host's addresses are raced as RFC 8305 says (``http_connect.open_socket``), since uvloop tries
  them in turn.
- One pool per client: at most ``max_connections`` open at once over all origins; a request beyond
  that waits for one, at most ``slot_wait`` seconds (then ``PoolFull``). Idle connections are handed
  out most recently used first (the one least likely to be closed by the server's idle timeout) and
  are closed after ``keepalive`` idle seconds.
- A response left before its end (a client went away, fallback gave up) closes its connection, so
  the provider sees the disconnect and stops generating; one read to the end goes back to the pool.
- Reading pauses while more than ``READ_BUFFER_LIMIT`` bytes wait unread: a fast provider cannot
  grow the router's memory (``http_connection``: one connection and its answer).
- Failures are the client's ``TransportError`` kinds (and ``TimeoutError`` for the connect step);
  the caller maps them (``provider_errors.error_from_transport``). ``ConnectionDropped`` says that a
  connection taken from the pool closed before any byte of the answer: the classic keep-alive race,
  after which a request can be sent again safely on a new connection (``Pool.request(fresh=True)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections import deque
from collections.abc import Mapping
from functools import lru_cache
from types import TracebackType

from services.router.backends.http_connect import (
    HAPPY_EYEBALLS_DELAY,
    AddressInfo,
    Origin,
    default_tls,
    first_to_connect,
    interleaved,
    open_socket,
    split_url,
)
from services.router.backends.http_connection import (
    HEADERS_LIMIT,
    READ_BUFFER_LIMIT,
    BadResponse,
    ConnectFailed,
    Connection,
    ConnectionBroken,
    ConnectionDropped,
    PoolFull,
    Response,
    TransportError,
    release,
)

__all__ = [  # the client's whole surface, whichever module of it defines a name
    "HAPPY_EYEBALLS_DELAY", "HEADERS_LIMIT", "READ_BUFFER_LIMIT", "USER_AGENT", "AddressInfo", "BadResponse",
    "ConnectFailed", "ConnectionBroken", "ConnectionDropped", "Origin", "Pool", "PoolFull", "Response",
    "TransportError",
    "first_to_connect", "interleaved", "open_socket", "request_head", "split_url",
]

USER_AGENT = "tollgate-router"
_FORBIDDEN_IN_HEADER = re.compile(r"[\r\n\x00]")  # a header that could end the head early


def request_head(method: str, url: str, headers: Mapping[str, str], body_size: int) -> tuple[Origin, bytes]:
    """The request's origin and head. Header values come from backends (credentials from the
    environment, fixed protocol headers), never from a client; a line break in one is still refused,
    since it would end the head early and let the rest pass as another header or request."""
    origin, head = _head_before_length(method, url, tuple(headers.items()))
    return origin, b"%scontent-length: %d\r\n\r\n" % (head, body_size)


@lru_cache(maxsize=256)
def _head_before_length(method: str, url: str, headers: tuple[tuple[str, str], ...]) -> tuple[Origin, bytes]:
    """Cached: a deployment sends the same URL and headers on every request."""
    origin, target = split_url(url)
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {origin.host_header}\r\nuser-agent: {USER_AGENT}\r\n"
             "accept-encoding: identity\r\n"]
    for name, value in headers:
        if _FORBIDDEN_IN_HEADER.search(name) or _FORBIDDEN_IN_HEADER.search(value):
            raise ValueError(f"header {name!r} has a line break or NUL")
        lines.append(f"{name}: {value}\r\n")
    return origin, "".join(lines).encode("latin-1")


class Pool:
    """Keep-alive connections to any number of origins, ``max_connections`` open at most."""

    def __init__(
        self, max_connections: int, keepalive: float, connect_timeout: float,
        tls: ssl.SSLContext | None = None, slot_wait: float | None = None,
    ) -> None:
        """``slot_wait``: how long a request may wait for a connection while ``max_connections`` are
        in use (None: as long as it takes)."""
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.slot_wait = slot_wait
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self._tls = tls
        self._idle: dict[Origin, list[Connection]] = {}
        self._open = 0  # connections open or being opened, idle ones included
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return sum(len(connections) for connections in self._idle.values())

    @property
    def waiting_requests(self) -> int:
        """Requests waiting for a connection because ``max_connections`` are open."""
        return sum(not waiter.done() for waiter in self._waiting)

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b"", *, fresh: bool = False,
        connect_timeout: float | None = None,
    ) -> Response:
        """Send one request and return once the answer's head arrived. ``fresh``: on a connection
        opened for it, never a pooled one (the one resend after ``ConnectionDropped``)."""
        origin, head = request_head(method, url, headers, len(body))
        data = head + body
        connection = await self._acquire(origin, fresh, connect_timeout or self.connect_timeout)
        try:
            await connection.send(data)
            await connection.head()
            return Response(connection)
        except BaseException:
            connection.close()
            release(connection)
            raise

    async def close(self) -> None:
        """Close every idle connection and refuse new requests; requests under way finish or break."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        self._wake_all()
        await asyncio.sleep(0)  # let the transports deliver their connection_lost

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # the pool's bookkeeping

    async def _acquire(self, origin: Origin, fresh: bool, connect_timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        deadline = None if self.slot_wait is None else loop.time() + self.slot_wait
        while True:
            if self._closed:
                raise ConnectionBroken("the provider client is closed")
            if not fresh:
                connection = self._take_idle(origin, loop.time())
                if connection is not None:
                    connection.reused = True
                    return connection
            if self._open < self.max_connections or self._close_an_idle_one():
                return await self._connect(origin, connect_timeout)
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiting.append(waiter)
            timer = None if deadline is None else loop.call_at(deadline, self._give_up, waiter)
            try:
                await waiter
            except PoolFull:
                self._forget(waiter)
                raise
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken and cancelled at once: the wake-up goes to the next
                else:
                    self._forget(waiter)
                raise
            finally:
                if timer is not None:
                    timer.cancel()

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        """Drop a waiter that stopped waiting, unless a wake-up already passed it over (it skips the
        done ones) and took it out."""
        with contextlib.suppress(ValueError):
            self._waiting.remove(waiter)

    def _give_up(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(PoolFull(
                f"all {self.max_connections} provider connections stayed in use for {self.slot_wait:g} s"
            ))

    def _take_idle(self, origin: Origin, now: float) -> Connection | None:
        connections = self._idle.get(origin)
        while connections:
            connection = connections.pop()  # the most recently used
            if now - connection.idle_since < self.keepalive and connection.transport is not None \
                    and not connection.transport.is_closing():
                return connection
            connection.close()
        return None

    def _close_an_idle_one(self) -> bool:
        """At the limit, with idle connections to other origins: close the longest idle one to make
        room; its slot passes to the new connection at once."""
        oldest: Connection | None = None
        for connections in self._idle.values():
            if connections and (oldest is None or connections[0].idle_since < oldest.idle_since):
                oldest = connections[0]
        if oldest is None:
            return False
        self._idle[oldest.origin].remove(oldest)
        oldest.pool = None
        oldest.close()
        self._open -= 1
        return True

    async def _connect(self, origin: Origin, timeout: float) -> Connection:
        self._open += 1
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                sock = await open_socket(origin.host, origin.port)
                try:
                    _, connection = await loop.create_connection(
                        lambda: Connection(self, origin), sock=sock,
                        ssl=(self._tls or default_tls()) if origin.tls else None,
                        server_hostname=origin.host if origin.tls else None,
                    )
                except BaseException:
                    sock.close()
                    raise
        except OSError as exc:  # refused, unreachable, no such name, TLS not verified (SSLError)
            self._slot_freed()
            raise ConnectFailed("could not connect to the provider") from exc
        except BaseException:
            self._slot_freed()
            raise
        return connection

    def keep(self, connection: Connection) -> None:
        if self._closed:
            connection.close()
            return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(connection.origin, []).append(connection)
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self.keepalive, self._close_expired)
        self._wake_one()

    def lost(self, connection: Connection) -> None:
        """The transport is gone (either side closed it): out of the pool, its slot free."""
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)
        self._slot_freed()

    def _slot_freed(self) -> None:
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._waiting:
            self._wake_one()

    def _close_expired(self) -> None:
        """Close connections idle for ``keepalive`` seconds (a socket nobody will use holds a file
        descriptor here and a slot at the provider); scheduled only while some are idle."""
        self._sweep = None
        now = asyncio.get_running_loop().time()
        for connections in self._idle.values():
            for connection in [c for c in connections if now - c.idle_since >= self.keepalive]:
                connections.remove(connection)
                connection.close()
        if any(self._idle.values()):
            self._sweep = asyncio.get_running_loop().call_later(self.keepalive, self._close_expired)
