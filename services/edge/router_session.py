"""The edge's side of the router Session: every request's call to the router over one gRPC stream.

A unary call through grpc.aio costs edge and router together about 0.6 ms of CPU, more than half of
the serving path's 1 ms budget, and a message in a stream costs about as much as a call. The session
pays that per *message*, and a message carries every frame that was ready while the previous one was
being written (``FrameBatcher``): under load, many requests' starts, deltas and answers per message
(docs/benchmarks.md has the measurements).

What each call keeps from the one-call RPCs:
- its errors: a ``CallError`` frame is the status and trailers an RPC would have ended with;
- its deadline: a timer here ends the call with a timeout and cancels it at the router;
- cancellation: ``cancel()`` sends a cancel frame, which cancels the backend generation; ``stop()``
  does the same and then waits (at most ``ACCOUNT_WAIT_SECONDS``) for the router's account of what
  the generation used until it stopped, which a cancelled RPC could never send back;
- keep-alives: a stream started with ``quiet_after`` gives ``QUIET`` when the handler has waited that
  long with nothing to read (one timer per call, re-armed once per interval: nothing per frame but a
  clock read);
- a dead router: the stream failing fails every call on it as a dropped RPC would (503 before the
  first byte, an error event after it); the next call opens a new session.

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
from collections import deque
from collections.abc import AsyncIterator

import grpc
import structlog
from prometheus_client import Counter

from services.common.errors import DependencyUnavailable, TollgateError, UpstreamTimeout
from services.common.frame_batcher import FrameBatcher
from services.edge.router_errors import UNAVAILABLE_MESSAGE, from_call_error
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
QUIET = router_pb2.GenerateResponse()
"""Not a message: "nothing came for ``quiet_after`` seconds" (the call goes on). Compared by identity."""
_QUIET_FRAME = router_pb2.RouterFrame()
OPEN_TIMEOUT_SECONDS = 10.0
LEGACY_RETRY_SECONDS = 60.0
# How long a stopped call waits for the router's account. A router stops a generation within
# milliseconds (it closes the provider's connection, or cancels the Triton call); a router from before
# the account never sends one, and the call then settles on what the edge saw (the last delta's count).
ACCOUNT_WAIT_SECONDS = 2.0


class SessionCall:
    """One call: ``first()`` then ``rest()`` for a stream, ``whole()`` for a non-stream answer."""

    def __init__(
        self, stream: _Stream, call_id: int, timeout: float, quiet_after: float | None = None
    ) -> None:
        self._stream = stream
        self.call_id = call_id
        self._frames: deque[router_pb2.RouterFrame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._failure: TollgateError | None = None
        self.ended = False
        # set once a cancel is sent: the router's account of the stopped call (None: no account)
        self._account: asyncio.Future[router_pb2.Finish | None] | None = None
        self._loop = loop = asyncio.get_running_loop()
        self._timer = loop.call_later(timeout, self._expire, timeout)
        self._heard_at = loop.time()
        self._quiet = False
        self._watch: asyncio.TimerHandle | None = None
        if quiet_after is not None:
            self._watch = loop.call_later(quiet_after, self._watch_quiet, quiet_after)

    # --- fed by the session ---

    def deliver(self, frame: router_pb2.RouterFrame) -> None:
        if self._account is not None:  # stopped: only the call's last frame matters now
            if _ends_call(frame):
                self._settle(_account_in(frame))
            return
        self._frames.append(frame)
        self._heard_at = self._loop.time()
        if _ends_call(frame):
            self._end()
        self._wake()

    def fail(self, exc: TollgateError) -> None:
        if self.ended:
            return
        self._failure = exc
        self._end()
        self._wake()

    def lost(self, exc: TollgateError) -> None:
        """The stream is gone: the call fails, and no account of a stopped call will come."""
        self.fail(exc)
        self._settle(None)

    def _end(self) -> None:
        self.ended = True
        self._timer.cancel()
        if self._watch is not None:
            self._watch.cancel()
        if self._account is None:  # a stopped call stays until its account comes
            self._stream.forget(self.call_id)

    def _send_cancel(self) -> None:
        """Tell the router to stop the call; its answer (or nothing, in time) settles ``_account``."""
        self._account = self._loop.create_future()
        if self._stream.cancel(self.call_id):
            self._loop.call_later(ACCOUNT_WAIT_SECONDS, self._settle, None)
        else:
            self._settle(None)

    def _settle(self, account: router_pb2.Finish | None) -> None:
        if self._account is not None and not self._account.done():
            self._account.set_result(account)
            self._stream.forget(self.call_id)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _watch_quiet(self, interval: float) -> None:
        """Wake a handler that has waited ``interval`` with nothing heard; a handler busy elsewhere
        (writing to a slow client) is not sending nothing, so it is left alone."""
        now = self._loop.time()
        if now - self._heard_at >= interval * 0.999:  # timers may fire a hair early
            if self._waiter is not None and not self._waiter.done():
                self._quiet = True
                self._wake()
            self._heard_at = now  # the keep-alive it sends is heard too: the next one an interval on
        self._watch = self._loop.call_at(self._heard_at + interval, self._watch_quiet, interval)

    def _expire(self, timeout: float) -> None:
        if not self.ended:
            self._send_cancel()
            self.fail(UpstreamTimeout(f"The model did not finish within {timeout:g} seconds."))

    # --- read by the request handler ---

    async def _next(self) -> router_pb2.RouterFrame | None:
        while not self._frames:
            if self._failure is not None:
                raise self._failure
            if self.ended:
                return None
            if self._quiet:
                self._quiet = False
                return _QUIET_FRAME
            self._waiter = self._loop.create_future()
            await self._waiter
        frame = self._frames.popleft()
        if frame.WhichOneof("frame") == "error":
            raise from_call_error(frame.error)
        return frame

    async def first(self) -> router_pb2.GenerateResponse:
        frame = await self._next()
        if frame is _QUIET_FRAME:
            return QUIET
        if frame is None or not frame.HasField("event"):
            raise DependencyUnavailable("The model router ended the call without an answer.")
        return frame.event

    async def rest(self) -> AsyncIterator[router_pb2.GenerateResponse]:
        while (frame := await self._next()) is not None:
            yield QUIET if frame is _QUIET_FRAME else frame.event

    async def whole(self) -> router_pb2.CompleteResponse:
        frame = await self._next()
        if frame is None or not frame.HasField("whole"):
            raise DependencyUnavailable("The model router ended the call without an answer.")
        return frame.whole

    def cancel(self) -> None:
        """Stop the call (and the generation behind it); nothing to do once it has ended."""
        if not self.ended:
            self._send_cancel()
            self.fail(DependencyUnavailable("The call was cancelled."))

    async def stop(self) -> router_pb2.Finish | None:
        """Cancel the call if it is still running, and return the router's account of it: what its
        generation used until it stopped (a Finish saying cancelled), or the Finish it ended with if it
        ended meanwhile. None when there is none: the call had ended before, the account did not come
        within ``ACCOUNT_WAIT_SECONDS``, or the stream was lost."""
        self.cancel()
        if self._account is None:
            return None
        return await asyncio.shield(self._account)


def _ends_call(frame: router_pb2.RouterFrame) -> bool:
    return frame.WhichOneof("frame") != "event" or frame.event.WhichOneof("event") == "finish"


def _account_in(frame: router_pb2.RouterFrame) -> router_pb2.Finish | None:
    """What a call's last frame says it used: an error (before any text) used nothing it can say."""
    kind = frame.WhichOneof("frame")
    if kind == "cancelled":
        return frame.cancelled
    if kind == "whole":
        return frame.whole.finish
    if kind == "event":
        return frame.event.finish
    return None


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
                hello = await asyncio.wait_for(call.read(), OPEN_TIMEOUT_SECONDS)
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
