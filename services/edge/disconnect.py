"""Noticing that the client has gone, from admission to the last byte, streamed or not.

An ASGI server does not cancel a handler whose client disconnects; it only answers ``receive()`` with
``http.disconnect``. Without a listener, a non-streamed request whose client gave up (an SDK timeout, a
closed tab) would run its whole generation, hold its concurrency lease and be billed for an answer
nobody reads, and a stream would go on until its first chunk failed to send, which for a model that
thinks before it answers can be many seconds.

So a listener task, started once the body has been read (every message it receives can then only be
the disconnect), cancels the serving task when the client goes; cancelling the serving task cancels
the router call it is awaiting, which cancels the generation behind it. The listener starts
``listen_after`` seconds into the request, on a timer: most requests are over by then, and a timer
costs the edge a fraction of what a task does (its creation, first step and cancellation), which on
the serving path's CPU budget is worth a disconnect noticed at most that much later.
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive

LISTEN_AFTER_SECONDS = 0.25


class DisconnectWatch:
    def __init__(self, receive: Receive, listen_after: float = LISTEN_AFTER_SECONDS) -> None:
        serving = asyncio.current_task()
        assert serving is not None, "a DisconnectWatch runs inside the request's task"
        self._serving = serving
        self._receive = receive
        self.gone = False  # the client disconnected and the serving task was cancelled for it
        self._stopped = False
        self._listener: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if listen_after > 0:
            self._timer = asyncio.get_running_loop().call_later(listen_after, self._listen_now)
        else:
            self._listen_now()

    def _listen_now(self) -> None:
        self._timer = None
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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
