"""One provider connection as an asyncio protocol, and the answer read on it.

llhttp (``httptools``) parses the answer as it arrives: its callbacks fill the head (kept as raw
bytes until someone asks) and a list of body pieces, and the reader waits on one future at a time.
Reading pauses while more than ``READ_BUFFER_LIMIT`` bytes wait unread, so a fast provider cannot
grow the router's memory. The pool that owns a connection (``Owner``) hears when it is lost and gets
it back, reusable or not, when its answer is released.
"""

from __future__ import annotations

import asyncio
import zlib
from functools import cached_property
from types import TracebackType
from typing import Protocol, cast

import httptools

from services.router.backends.http_connect import Origin

READ_BUFFER_LIMIT = 1 << 20  # unread answer bytes that pause the socket's reading
HEADERS_LIMIT = 64 * 1024  # response head bytes: a provider's real heads are a few KB


class TransportError(Exception):
    """A provider call failed below HTTP's meaning: no connection, a broken one, or bytes that are not
    HTTP. The message never names the host (which may name the provider); the caller words it."""


class ConnectFailed(TransportError):
    """No connection: the name did not resolve, the address refused, or TLS did not verify."""


class PoolFull(TransportError):
    """Every connection the pool may open was in use, and none came free within its wait: the router's
    own limit, not the provider's failure."""


class ConnectionDropped(TransportError):
    """A pooled connection closed before any byte of the answer: the request can be sent again."""


class ConnectionBroken(TransportError):
    """The connection closed or reset after the answer began, or a new one closed unanswered."""


class BadResponse(TransportError):
    """The answer is not HTTP/1.1 this client reads (malformed, a huge head, an unknown encoding)."""


class Owner(Protocol):
    """The pool a connection counts in."""

    def keep(self, connection: Connection) -> None:
        """The connection's answer was read to its end and it may carry another request."""

    def lost(self, connection: Connection) -> None:
        """The transport is gone (either side closed it): the connection's slot is free."""


class Connection(asyncio.Protocol):
    """One connection and the answer being read on it: llhttp's callbacks fill the head and a list of
    body pieces; the reader waits on one future at a time."""

    def __init__(self, pool: Owner, origin: Origin) -> None:
        self.pool: Owner | None = pool  # None once no pool counts it (lost, or closed to make room)
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
            pool.lost(self)

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

    def __init__(self, connection: Connection) -> None:
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
            release(self._connection)

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


def release(connection: Connection) -> None:
    """Give ``connection`` back to its pool, or close it when it cannot carry another request."""
    connection.in_use = False
    if connection.pool is None or not connection.reusable:
        connection.close()  # its connection_lost gives the pool its slot back
    else:
        connection.pool.keep(connection)
