"""The edge's side of the router Session: every request's call to the router over one gRPC stream.

A unary call through grpc.aio costs edge and router together about 0.6 ms of CPU, more than half of
the serving path's 1 ms budget, and a message in a stream costs about as much as a call. The session
pays that per *message*, and a message carries every frame that was ready while the previous one was
being written (``FrameBatcher``): under load, many requests' starts, deltas and answers per message
(docs/benchmarks.md has the measurements).

Each call keeps what the one-call RPCs gave it (its errors, deadline, cancellation, keep-alives:
``session_call.SessionCall``), and a dead router fails every call on the stream as a dropped RPC
would (503 before the first byte, an error event after it); the next call opens a new session.

A router from before Session answers it UNIMPLEMENTED; the edge then uses the one-call RPCs and
tries the session again a minute later, so a rolling upgrade works in either order. A router that is
shutting down says ``draining``: its calls finish, new ones open a new session (after the router's
GOAWAY, on a new connection).

Frames for one call are queued here without a bound: the reader never waits on a slow client, so one
slow reader cannot hold the other calls back. What a call can queue is its own answer (max_tokens).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import structlog
from prometheus_client import Counter

from services.common.errors import DependencyUnavailable
from services.common.frame_batcher import FrameBatcher
from services.edge.router_errors import UNAVAILABLE_MESSAGE
from services.edge.session_call import SessionCall
from tollgate.router.v1 import router_pb2, router_pb2_grpc

log = structlog.get_logger(__name__)
MESSAGES = Counter(
    "tollgate_router_session_messages_total", "Session messages between edge and router", ["direction"]
)
FRAMES = Counter(
    "tollgate_router_session_frames_total",
    "Session frames (call starts, cancels, events, answers) between edge and router; "
    "frames / messages is how many share one gRPC message", ["direction"],
)
_SENT_MESSAGES, _SENT_FRAMES = MESSAGES.labels("to_router"), FRAMES.labels("to_router")
_READ_MESSAGES, _READ_FRAMES = MESSAGES.labels("from_router"), FRAMES.labels("from_router")

SessionStream = grpc.aio.StreamStreamCall[router_pb2.EdgeFrames, router_pb2.RouterFrames]
OPEN_TIMEOUT_SECONDS = 10.0
LEGACY_RETRY_SECONDS = 60.0


class _Stream:
    """One open Session stream and the calls running on it."""

    def __init__(self, call: SessionStream) -> None:
        self._call = call
        self._calls: dict[int, SessionCall] = {}
        self._next_id = 0
        self._out: FrameBatcher[router_pb2.EdgeFrame] = FrameBatcher(self._write)
        self.draining = False
        self.broken = False
        self.opened_at = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []

    async def _write(self, frames: list[router_pb2.EdgeFrame]) -> None:
        _SENT_MESSAGES.inc()
        _SENT_FRAMES.inc(len(frames))
        await self._call.write(router_pb2.EdgeFrames(frames=frames))

    def begin(self) -> None:
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._send())]

    @property
    def usable(self) -> bool:
        return not (self.broken or self.draining)

    @property
    def open_calls(self) -> int:
        return len(self._calls)

    def start(
        self, request: router_pb2.GenerateRequest, stream: bool, timeout: float, quiet_after: float | None
    ) -> SessionCall:
        self._next_id += 1
        call = SessionCall(self, self._next_id, timeout, quiet_after)
        self._calls[call.call_id] = call
        start = router_pb2.CallStart(call_id=call.call_id, request=request, stream=stream)
        self._out.put(router_pb2.EdgeFrame(start=start))
        return call

    def cancel(self, call_id: int) -> bool:
        """Send the call's cancel frame; False when there is no stream to send it on."""
        if call_id in self._calls and not self.broken:
            self._out.put(router_pb2.EdgeFrame(cancel=call_id))
            return True
        return False

    def forget(self, call_id: int) -> None:
        self._calls.pop(call_id, None)
        self._close_if_drained()

    def retire(self) -> None:
        """Take no new calls; half-close once the running ones have ended (the router is draining, or
        the edge moves this session to the next router)."""
        if not self.draining:
            self.draining = True
            self._close_if_drained()

    def _close_if_drained(self) -> None:
        if self.draining and not self._calls:
            self._out.close()  # half-close: the router's session ends once this is written

    async def _send(self) -> None:
        try:
            await self._out.run()
            await self._call.done_writing()
        except Exception as exc:  # noqa: BLE001 - the stream broke while writing: the reader says why
            self._break(exc)

    async def _read(self) -> None:
        try:
            while isinstance(message := await self._call.read(), router_pb2.RouterFrames):  # else EOF
                _READ_MESSAGES.inc()
                _READ_FRAMES.inc(len(message.frames))
                for frame in message.frames:
                    call = self._calls.get(frame.call_id)
                    if call is not None:
                        call.deliver(frame)
                if message.draining and not self.draining:
                    log.info("router_session_draining", open_calls=len(self._calls))
                    self.retire()
            self._break(None)
        except Exception as exc:  # noqa: BLE001 - whatever ended the stream ends its calls
            self._break(exc)

    def _break(self, exc: BaseException | None) -> None:
        """The stream is over: fail what is still running on it, as dropped RPCs would be."""
        if not self.broken:
            self.broken = True
            if self._calls:
                log.warning("router_session_lost", open_calls=len(self._calls), error=repr(exc))
        for call in list(self._calls.values()):
            call.lost(DependencyUnavailable(UNAVAILABLE_MESSAGE))
        self._out.close()

    def close(self) -> None:
        self._call.cancel()
        for task in self._tasks:
            task.cancel()


class RouterSession:
    """Calls to the router over one Session stream, opened on first use and reopened when it ends.

    ``rehome_seconds``: retire the stream once it is that old and open the next one, for an edge that
    keeps a session per router on a round-robin channel. A stream is placed on a router when it opens,
    and only on routers that are connected at that moment, so sessions opened together at start-up, or
    reopened while a router restarts, pile up on the routers that were there; reopening now and then
    spreads them again. The retired stream finishes its calls first.
    """

    def __init__(
        self, stub: router_pb2_grpc.RouterServiceAsyncStub, rehome_seconds: float | None = None
    ) -> None:
        self._stub = stub
        self._rehome_seconds = rehome_seconds
        self._stream: _Stream | None = None
        self._opening: asyncio.Lock | None = None
        self._legacy_until = 0.0
        self._retired: list[_Stream] = []

    @property
    def open_calls(self) -> int:
        """Calls running on the current stream: how busy the router behind it is with this edge."""
        return self._stream.open_calls if self._stream is not None else 0

    @property
    def legacy(self) -> bool:
        """True while the router does not know Session (use the one-call RPCs)."""
        return time.monotonic() < self._legacy_until

    async def start(
        self, request: router_pb2.GenerateRequest, stream: bool, timeout: float,
        quiet_after: float | None = None,
    ) -> SessionCall | None:
        """The call, started; None when the router has no Session (the caller uses the RPCs)."""
        current = self._stream
        if (current is not None and self._rehome_seconds is not None
                and time.monotonic() - current.opened_at > self._rehome_seconds):
            current.retire()
        if current is None or not current.usable:
            current = await self._open()
            if current is None:
                return None
        return current.start(request, stream, timeout, quiet_after)

    async def _open(self) -> _Stream | None:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._stream is not None and self._stream.usable:
                return self._stream
            if self.legacy:
                return None
            if self._stream is not None:
                self._retired = [s for s in self._retired if not s.broken] + [self._stream]
                self._stream = None
            call: SessionStream = self._stub.Session()  # type: ignore[call-arg]  # none: call.write
            try:
                async with asyncio.timeout(OPEN_TIMEOUT_SECONDS):  # not wait_for: it can swallow a cancel
                    hello = await call.read()
            except grpc.aio.AioRpcError as err:
                call.cancel()
                if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                    log.warning("router_without_session", retry_in_s=LEGACY_RETRY_SECONDS)
                    self._legacy_until = time.monotonic() + LEGACY_RETRY_SECONDS
                    return None
                raise DependencyUnavailable(UNAVAILABLE_MESSAGE) from None
            except TimeoutError:
                call.cancel()
                raise DependencyUnavailable(UNAVAILABLE_MESSAGE) from None
            if not isinstance(hello, router_pb2.RouterFrames):  # EOF: ended at once
                raise DependencyUnavailable(UNAVAILABLE_MESSAGE)
            opened = _Stream(call)
            opened.draining = hello.draining
            opened.begin()
            self._stream = opened
            return opened

    def close(self) -> None:
        """Cancel the session (at shutdown, after the requests have been drained)."""
        for stream in [*self._retired, *([self._stream] if self._stream else [])]:
            stream.close()
        self._stream = None
        self._retired = []
