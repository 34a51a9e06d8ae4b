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
- A host's addresses are raced as RFC 8305 says (``open_socket``), since uvloop tries them in turn.
- One pool per client: at most ``max_connections`` open at once over all origins; a request beyond
  that waits for one. Idle connections are handed out most recently used first (the one least likely
  to be closed by the server's idle timeout) and are closed after ``keepalive`` idle seconds.
- A response left before its end (a client went away, fallback gave up) closes its connection, so
  the provider sees the disconnect and stops generating; one read to the end goes back to the pool.
- Reading pauses while more than ``READ_BUFFER_LIMIT`` bytes wait unread: a fast provider cannot
  grow the router's memory.
- Failures are this module's ``TransportError`` kinds (and ``TimeoutError`` for the connect step);
  the caller maps them (``provider_errors.error_from_transport``). ``ConnectionDropped`` says that a
  connection taken from the pool closed before any byte of the answer: the classic keep-alive race,
  after which a request can be sent again safely on a new connection (``Pool.request(fresh=True)``).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import zip_longest
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried beside a silent one (RFC 8305)
READ_BUFFER_LIMIT = 1 << 20  # unread answer bytes that pause the socket's reading
HEADERS_LIMIT = 64 * 1024  # response head bytes: a provider's real heads are a few KB
USER_AGENT = "tollgate-router"
_FORBIDDEN_IN_HEADER = re.compile(r"[\r\n\x00]")  # a header that could end the head early


class TransportError(Exception):
    """A provider call failed below HTTP's meaning: no connection, a broken one, or bytes that are not
    HTTP. The message never names the host (which may name the provider); the caller words it."""


class ConnectFailed(TransportError):
    """No connection: the name did not resolve, the address refused, or TLS did not verify."""


class ConnectionDropped(TransportError):
    """A pooled connection closed before any byte of the answer: the request can be sent again."""


class ConnectionBroken(TransportError):
    """The connection closed or reset after the answer began, or a new one closed unanswered."""


class BadResponse(TransportError):
    """The answer is not HTTP/1.1 this client reads (malformed, a huge head, an unknown encoding)."""


@dataclass(frozen=True)
class Origin:
    """Where a connection goes; connections are pooled per origin."""

    tls: bool
    host: str
    port: int

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@lru_cache(maxsize=256)
def split_url(url: str) -> tuple[Origin, str]:
    """``(origin, request target)`` of an absolute ``http(s)`` URL; cached, since a deployment's few
    URLs are split on every request."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("provider URLs are absolute http or https URLs")
    tls = parts.scheme == "https"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Origin(tls, parts.hostname, parts.port or (443 if tls else 80)), target


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


class _Connection(asyncio.Protocol):
    """One connection and the answer being read on it: llhttp's callbacks fill the head and a list of
    body pieces; the reader waits on one future at a time."""

    def __init__(self, pool: Pool, origin: Origin) -> None:
        self.pool: Pool | None = pool  # None once no pool counts it (lost, or closed to make room)
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.reused = False  # the current request is not this connection's first
        self.in_use = False
        self._parser = httptools.HttpResponseParser(self)
        self._lost = False
        self._closing = False
        self._paused = False
        self._writable: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []  # as received; decoded only when asked for
        self._head_size = 0
        self._head_done = False
        self._answered = False  # any byte of the answer arrived
        self.complete = False
        self._surplus = False  # a second answer began after this one: the server is out of step
        self._keep_alive = False
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: TransportError | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.in_use or self.complete:  # bytes nobody asked for (a 408 before an idle close)
            self._keep_alive = False  # out of step with the server: never reused
            self.close()
            return
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the provider switched protocols"))
        except httptools.HttpParserError as exc:  # a callback's own error is the one to report
            cause = exc.__context__
            invalid = BadResponse("the provider's answer is not valid HTTP/1.1")
            self._fail(cause if isinstance(cause, BadResponse) else invalid)
        if self._surplus:
            self.close()
        if self._buffered > READ_BUFFER_LIMIT and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport: HTTP/1.1 has no use for a half-open connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self.in_use and not self.complete and self._error is None:
            if self._head_done and self._until_close():
                self.complete = True  # a body framed by the close ends here
            elif self._answered:
                self._error = ConnectionBroken("the connection broke during the answer")
            elif self.reused:
                self._error = ConnectionDropped("a pooled connection closed before the answer")
            else:
                self._error = ConnectionBroken("the connection closed before the answer")
        self.resume_writing()
        self._wake()
        pool, self.pool = self.pool, None
        if pool is not None:
            pool._lost(self)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # llhttp's callbacks (all but the first ignore a surplus answer)

    def on_message_begin(self) -> None:
        if self.complete:
            self._surplus = True
            self._keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._surplus:
            return
        self._head_size += len(name) + len(value) + 4
        if self._head_size > HEADERS_LIMIT:
            raise BadResponse("the provider's answer has a head over 64 KB")
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._surplus:
            return
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue and friends: informational, the real head follows
            self.raw_headers = []
            self._head_size = 0
            return
        self.status = status
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        if self._surplus:
            return
        self._pieces.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        if self._head_done and not self._surplus:
            self.complete = True
            self._keep_alive = self._parser.should_keep_alive()  # llhttp forgets it right after

    # the request's side

    def _until_close(self) -> bool:
        headers = decoded(self.raw_headers)
        framed = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
        return not framed

    def _fail(self, error: TransportError) -> None:
        self._error = error
        self.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def send(self, data: bytes) -> None:
        """Write the request, waiting while the kernel's buffer is full (a large body)."""
        self._reset()
        self.in_use = True
        assert self.transport is not None
        self.transport.write(data)
        if self._writable is not None:
            await self._writable

    async def head(self) -> None:
        while not self._head_done:
            await self._wait()

    async def read_some(self) -> bytes:
        """The body bytes that arrived since the last call, waiting for some; ``b""`` at the end."""
        while not self._pieces:
            if self.complete:
                return b""
            await self._wait()
        pieces = self._pieces
        self._pieces = []
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def _wait(self) -> None:
        if self._error is None and not self._lost:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        if self._error is not None:
            raise self._error
        if self._lost and not self.complete:
            raise ConnectionBroken("the connection closed before the answer ended")

    @property
    def reusable(self) -> bool:
        healthy = not self._lost and not self._closing and self._error is None
        return self.complete and self._keep_alive and healthy

    def close(self) -> None:
        """Close at once (an abort): an answer nobody reads must stop at the provider now."""
        if self.transport is not None and not self._lost and not self._closing:
            self._closing = True
            self.transport.abort()


class Response:
    """A provider's answer: status, lower-cased headers (repeats joined by ``", "``), and the body read
    as it arrives. Leave it through ``async with`` or ``release()``: read to its end, its connection
    goes back to the pool; otherwise the connection is closed."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = connection.status
        self._raw_headers = connection.raw_headers
        encoding = "identity"
        for name, value in self._raw_headers:
            if name.lower() == b"content-encoding":
                encoding = value.decode("latin-1").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise BadResponse(f"the provider's answer has an unsupported content-encoding {encoding!r}")
        # wbits 32+: the gzip or zlib header is detected (a raw deflate stream is rare enough to refuse)
        self._inflate = None if encoding == "identity" else zlib.decompressobj(zlib.MAX_WBITS | 32)
        self._released = False

    @cached_property
    def headers(self) -> dict[str, str]:
        return decoded(self._raw_headers)

    async def read_some(self) -> bytes:
        """The next bytes of the body, as they arrive; ``b""`` at its end."""
        data = await self._connection.read_some()
        inflate = self._inflate
        if inflate is None:
            return data
        try:
            while data:
                if text := inflate.decompress(data):
                    return text
                data = await self._connection.read_some()  # a compressor's header alone: read on
            return inflate.flush()
        except zlib.error as exc:
            raise BadResponse("the provider's compressed answer does not decompress") from exc

    async def read(self, limit: int) -> bytes:
        """The body, or its first ``limit`` bytes and a little more (the connection is then closed)."""
        pieces: list[bytes] = []
        size = 0
        while size < limit and (piece := await self.read_some()):
            pieces.append(piece)
            size += len(piece)
        return b"".join(pieces)

    def release(self) -> None:
        if not self._released:
            self._released = True
            _release(self._connection)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def decoded(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header names lower-cased, repeats joined by ``", "``."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _release(connection: _Connection) -> None:
    connection.in_use = False
    if connection.pool is None or not connection.reusable:
        connection.close()  # its connection_lost gives the pool its slot back
    else:
        connection.pool._keep(connection)


class Pool:
    """Keep-alive connections to any number of origins, ``max_connections`` open at most."""

    def __init__(
        self, max_connections: int, keepalive: float, connect_timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self._tls = tls
        self._idle: dict[Origin, list[_Connection]] = {}
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
            _release(connection)
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

    async def _acquire(self, origin: Origin, fresh: bool, connect_timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
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
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken and cancelled at once: the wake-up goes to the next
                else:
                    self._waiting.remove(waiter)
                raise

    def _take_idle(self, origin: Origin, now: float) -> _Connection | None:
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
        oldest: _Connection | None = None
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

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:
        self._open += 1
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                sock = await open_socket(origin.host, origin.port)
                try:
                    _, connection = await loop.create_connection(
                        lambda: _Connection(self, origin), sock=sock,
                        ssl=(self._tls or _default_tls()) if origin.tls else None,
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

    def _keep(self, connection: _Connection) -> None:
        if self._closed:
            connection.close()
            return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(connection.origin, []).append(connection)
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self.keepalive, self._close_expired)
        self._wake_one()

    def _lost(self, connection: _Connection) -> None:
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


AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


async def open_socket(host: str, port: int) -> socket.socket:
    """A connected TCP socket to the first of ``host``'s addresses that answers, trying them in
    turn and starting the next one ``HAPPY_EYEBALLS_DELAY`` seconds after the last (RFC 8305).

    Why here: uvloop's ``create_connection`` tries a host's addresses one after another, so a host
    whose IPv6 route is broken (the packets vanish instead of being refused) would spend the whole
    connect timeout on its first, IPv6 address before trying IPv4."""
    loop = asyncio.get_running_loop()
    addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not addresses:
        raise OSError(f"no address for {host!r}")
    return await first_to_connect(interleaved(addresses))


async def first_to_connect(addresses: Sequence[AddressInfo]) -> socket.socket:
    """Connect to ``addresses`` in order, each started ``HAPPY_EYEBALLS_DELAY`` after the one before
    unless that one failed first; the first connected wins and the others are closed."""
    loop = asyncio.get_running_loop()
    infos = iter(addresses)
    attempts: set[asyncio.Task[socket.socket]] = set()
    errors: list[BaseException] = []
    winner: socket.socket | None = None
    try:
        while winner is None:
            info = next(infos, None)
            if info is not None:
                attempts.add(asyncio.create_task(_connect_to(loop, info)))
            if not attempts:
                break
            done, _ = await asyncio.wait(
                attempts, timeout=HAPPY_EYEBALLS_DELAY if info is not None else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for attempt in done:
                attempts.discard(attempt)
                failure = attempt.exception()
                if failure is not None:
                    errors.append(failure)
                elif winner is None:
                    winner = attempt.result()
                else:
                    attempt.result().close()
    finally:
        for attempt in attempts:
            attempt.cancel()
        for late in await asyncio.gather(*attempts, return_exceptions=True):
            if isinstance(late, socket.socket):
                late.close()  # connected just as it was cancelled
    if winner is None:
        raise errors[0] if errors else OSError("no address to connect to")
    return winner


def interleaved(infos: Sequence[AddressInfo]) -> list[AddressInfo]:
    """Addresses alternating between families, the resolver's first family first (RFC 8305)."""
    families: dict[socket.AddressFamily, list[AddressInfo]] = {}
    for info in infos:
        families.setdefault(info[0], []).append(info)
    return [info for group in zip_longest(*families.values()) for info in group if info is not None]


async def _connect_to(loop: asyncio.AbstractEventLoop, info: AddressInfo) -> socket.socket:
    family, kind, proto, _, address = info
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a request is one write; no waiting
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


@lru_cache(maxsize=1)
def _default_tls() -> ssl.SSLContext:
    """The system's trust store (OpenSSL honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``), host names
    checked; built once, since building one reads every CA certificate."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context
