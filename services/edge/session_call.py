"""One request's call over the router Session (``router_session``), with what it keeps from the one-call
RPCs:
- its errors: a ``CallError`` frame is the status and trailers an RPC would have ended with;
- its deadline: a timer here ends the call with a timeout and cancels it at the router;
- cancellation: ``cancel()`` sends a cancel frame, which cancels the backend generation; ``stop()``
  does the same and then waits (at most ``ACCOUNT_WAIT_SECONDS``) for the router's account of what
  the generation used until it stopped, which a cancelled RPC could never send back;
- keep-alives: a stream started with ``quiet_after`` gives ``QUIET`` when the handler has waited that
  long with nothing to read (one timer per call, re-armed once per interval: nothing per frame but a
  clock read).

The session feeds it (``deliver``, ``fail``, ``lost``); the request handler reads it (``first`` and
``rest``, or ``whole``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from services.common.errors import DependencyUnavailable, TollgateError, UpstreamTimeout
from services.edge.router_errors import from_call_error
from tollgate.router.v1 import router_pb2

QUIET = router_pb2.GenerateResponse()
"""Not a message: "nothing came for ``quiet_after`` seconds" (the call goes on). Compared by identity."""
_QUIET_FRAME = router_pb2.RouterFrame()
# How long a stopped call waits for the router's account. A router stops a generation within
# milliseconds (it closes the provider's connection, or cancels the Triton call); a router from before
# the account never sends one, and the call then settles on what the edge saw (the last delta's count).
ACCOUNT_WAIT_SECONDS = 2.0


class CallChannel(Protocol):
    """What a call needs of the session stream it runs on."""

    def cancel(self, call_id: int) -> bool:
        """Send the router a cancel for the call; False when the stream cannot (it is gone)."""
        ...

    def forget(self, call_id: int) -> None:
        """The call is over: nothing more is delivered to it."""
        ...


class SessionCall:
    """One call: ``first()`` then ``rest()`` for a stream, ``whole()`` for a non-stream answer."""

    def __init__(
        self, stream: CallChannel, call_id: int, timeout: float, quiet_after: float | None = None
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
