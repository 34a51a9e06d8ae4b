"""Noticing that the client has gone, from admission to the last byte, streamed or not.

An ASGI server does not cancel a handler whose client disconnects; it only answers ``receive()`` with
``http.disconnect``. Without a listener, a non-streamed request whose client gave up (an SDK timeout, a
closed tab) would run its whole generation, hold its concurrency lease and be billed for an answer
nobody reads, and a stream would go on until its first chunk failed to send, which for a model that
thinks before it answers can be many seconds.

So a listener task, started once the body has been read (every message it receives can then only be
the disconnect), cancels the serving task when the client goes; cancelling the serving task cancels
the router call it is awaiting, which cancels the generation behind it. The listener starts
``listen_after`` seconds into the request: most requests are over by then. No timer per request
either: the watches waiting for their listener sit in one ordered table per event loop, which one
sweep a few times a second walks from its oldest end while any are waiting. A request costs a table
insert and a delete, and a disconnect is noticed at most a sweep late. A uvloop timer created and
cancelled per request measured 3 µs in a loop of its own but, with the CORS check then beside it,
about 40 µs of the edge's CPU per request under load (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive

LISTEN_AFTER_SECONDS = 0.25
SWEEP_SECONDS = 0.125


class _Waiting:
    """The watches of one event loop whose listener is not started yet, oldest first, and the sweep
    that starts each one once it is due. The sweep runs only while the table is not empty."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: dict[DisconnectWatch, float] = {}  # insertion order: the oldest first
        self._sweep: asyncio.Task[None] | None = None

    def add(self, watch: DisconnectWatch, at: float) -> None:
        self.due[watch] = at
        if self._sweep is None:
            self._sweep = self.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while self.due:
                await asyncio.sleep(SWEEP_SECONDS)
                now = self.loop.time()
                ready = []
                for watch, at in self.due.items():
                    if at > now:
                        break
                    ready.append(watch)
                for watch in ready:
                    del self.due[watch]
                    watch._listen_now()
        finally:
            self._sweep = None


_waiting: _Waiting | None = None


def _waiting_in(loop: asyncio.AbstractEventLoop) -> _Waiting:
    global _waiting  # one table per event loop, made on first use in it
    if _waiting is None or _waiting.loop is not loop:
        _waiting = _Waiting(loop)
    return _waiting


class DisconnectWatch:
    def __init__(self, receive: Receive, listen_after: float = LISTEN_AFTER_SECONDS) -> None:
        serving = asyncio.current_task()
        assert serving is not None, "a DisconnectWatch runs inside the request's task"
        self._serving = serving
        self._receive = receive
        self.gone = False  # the client disconnected and the serving task was cancelled for it
        self._stopped = False
        self._listener: asyncio.Task[None] | None = None
        self._queued_in: _Waiting | None = None  # while its listener is not started yet
        if listen_after > 0:
            loop = asyncio.get_running_loop()
            self._queued_in = _waiting_in(loop)
            self._queued_in.add(self, loop.time() + listen_after)
        else:
            self._listen_now()

    def _listen_now(self) -> None:
        self._queued_in = None
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self._stopped:
            self.gone = True
            self._serving.cancel()

    def stop(self) -> None:
        """No cancellation from here on (the answer is being finished or cleaned up). Idempotent."""
        self._stopped = True
        if self._queued_in is not None:
            self._queued_in.due.pop(self, None)
            self._queued_in = None
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None

    def absorb(self) -> bool:
        """Called with the serving task's ``CancelledError`` in hand: True when the cancellation was
        ours (the client left, a normal end of the request; the task is no longer cancelling), False
        when it came from elsewhere (shutdown) and must propagate."""
        self.stop()
        if not self.gone:
            return False
        self._serving.uncancel()
        return True
