"""The router's side of a Session: many Generate and Complete calls over one gRPC stream.

Each started call runs as its own task with exactly the rules of the one-call RPCs (fallback before
the first byte, an error before any text ends the call with a ``CallError``, after it a Finish saying
error), and its frames go out through one ``FrameBatcher``. A cancel frame cancels the call's task,
which cancels the backend generation behind it, as a cancelled RPC does, and then answers with a
``cancelled`` frame: what the generation used until it stopped, which a cancelled RPC cannot say, so
that a client who leaves is billed for the work done for it (the prompt the backend read, the output
it made), not for what the edge had seen of it. The stream ending (the edge closed it, crashed, or
its connection dropped) cancels every call still running on it, with nobody left to tell.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import structlog

from services.common.errors import TollgateError
from services.common.frame_batcher import FrameBatcher
from services.router.backends import Outcome
from services.router.fallback import Served
from tollgate.router.v1 import router_pb2

log = structlog.get_logger(__name__)


class Calls(Protocol):
    """What a session runs: ``RouterService``'s two kinds of call, each filling its ``Served`` as it
    goes, and the account of one that was cancelled."""

    def events(
        self, request: router_pb2.GenerateRequest, served: Served
    ) -> AsyncIterator[router_pb2.GenerateResponse]: ...

    async def whole(
        self, request: router_pb2.GenerateRequest, served: Served
    ) -> router_pb2.CompleteResponse: ...

    async def cancelled(self, request: router_pb2.GenerateRequest, served: Served) -> router_pb2.Finish: ...


def call_error(exc: TollgateError) -> router_pb2.CallError:
    """What the one-call RPCs put in the status and trailers, as a frame."""
    error = router_pb2.CallError(
        code=exc.code or "", grpc_status=exc.grpc_code.value[0], message=exc.message, param=exc.param or ""
    )
    if exc.retry_after is not None:
        error.retry_after_seconds = exc.retry_after
    return error


class CallSession:
    def __init__(self, calls: Calls, write: Callable[[router_pb2.RouterFrames], Awaitable[None]]) -> None:
        self._calls = calls
        self._send = write
        self._out: FrameBatcher[router_pb2.RouterFrame] = FrameBatcher(self._write)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._cancelling: set[int] = set()  # calls the edge cancelled: each is owed a cancelled frame
        self._draining = False

    async def _write(self, frames: list[router_pb2.RouterFrame]) -> None:
        await self._send(router_pb2.RouterFrames(frames=frames, draining=self._draining))

    def drain(self) -> None:
        """Say so in the next message (an empty one if nothing else is going out)."""
        if not self._draining:
            self._draining = True
            self._out.put(router_pb2.RouterFrame())  # call id 0: no call's frame

    async def serve(self, incoming: AsyncIterator[router_pb2.EdgeFrames]) -> None:
        """Run the session until the edge ends it; then let its calls finish (a half-close) or cancel
        them (the stream was cancelled)."""
        await self._send(router_pb2.RouterFrames(draining=self._draining))  # the session is open
        writer = asyncio.create_task(self._out.run())
        writer.add_done_callback(_consume)  # a failed write means the stream is gone: gRPC ends us
        try:
            async for message in incoming:
                for frame in message.frames:
                    self._take(frame)
            if self._running:
                await asyncio.wait(list(self._running.values()))
            self._out.close()
            await writer
        finally:
            for task in self._running.values():
                task.cancel()
            writer.cancel()

    def _take(self, frame: router_pb2.EdgeFrame) -> None:
        kind = frame.WhichOneof("frame")
        if kind == "start":
            call_id = frame.start.call_id
            if call_id in self._running:
                log.warning("session_call_id_reused", call_id=call_id)
                return
            task = asyncio.create_task(self._run(frame.start))
            self._running[call_id] = task
            task.add_done_callback(lambda _: self._running.pop(call_id, None))
        elif kind == "cancel":
            running = self._running.get(frame.cancel)  # it stays there until its cancelled frame is out
            if running is not None and frame.cancel not in self._cancelling and running.cancel():
                self._cancelling.add(frame.cancel)

    async def _run(self, start: router_pb2.CallStart) -> None:
        call_id = start.call_id
        served = Served(Outcome())
        try:
            if start.stream:
                async for event in self._calls.events(start.request, served):
                    self._out.put(router_pb2.RouterFrame(call_id=call_id, event=event))
            else:
                whole = await self._calls.whole(start.request, served)
                self._out.put(router_pb2.RouterFrame(call_id=call_id, whole=whole))
        except asyncio.CancelledError:
            if call_id not in self._cancelling:
                raise  # the session is ending: nobody is left to tell
            # the generation has stopped (cancelling it closed the backend call on the way out)
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the cancel was asked for and is answered: the task ends normally
            cancelled = await self._calls.cancelled(start.request, served)
            self._out.put(router_pb2.RouterFrame(call_id=call_id, cancelled=cancelled))
        except TollgateError as exc:  # only before the first message, as in Generate and Complete
            self._out.put(router_pb2.RouterFrame(call_id=call_id, error=call_error(exc)))
        except Exception as exc:  # a bug (cancellation is not an Exception): this call fails, the rest go on
            log.exception("session_call_failed", call_id=call_id)
            failed = TollgateError(f"The model router failed: {type(exc).__name__}")
            self._out.put(router_pb2.RouterFrame(call_id=call_id, error=call_error(failed)))
        finally:
            self._cancelling.discard(call_id)  # also a call that ended some other way as it was cancelled


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
