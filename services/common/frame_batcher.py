"""One writer for a long-lived gRPC stream that carries many calls (the edge ↔ router Session).

grpc.aio charges a fixed cost per message on each side (a completion-queue round trip, a wake-up of
the event loop), about as much as a whole unary call: sending each call's frame as its own message
would cost what per-call RPCs cost. So frames are queued, and the writer sends everything that became
ready while its previous message was being written as the next message, after letting the event loop
run the work already under way (``_gather``): one frame per message when idle (no timer, no added
wait beyond a pass of the loop), many under load, where the per-message cost is paid once per batch.

A message is cut at ``max_bytes`` (a frame bigger than that travels alone), which keeps it well under
gRPC's receive limit and keeps one long answer from holding the others back for long.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar


class _Sized(Protocol):
    def ByteSize(self) -> int: ...  # noqa: N802 - protobuf's name


F = TypeVar("F", bound=_Sized)

MAX_MESSAGE_BYTES = 1024 * 1024
GATHER_PASSES = 4
# gRPC's default receive limit is 4 MiB; a session message holds one frame above MAX_MESSAGE_BYTES
# at most, and a frame is one request (the edge caps bodies at EDGE_MAX_BODY_BYTES) or one answer
RECEIVE_LIMIT_BYTES = 512 * 1024 * 1024
CHANNEL_OPTIONS = (("grpc.max_receive_message_length", RECEIVE_LIMIT_BYTES),)


class FrameBatcher(Generic[F]):
    """Queue frames with ``put``; ``run`` writes them, batched, through ``write`` until ``close``."""

    def __init__(
        self, write: Callable[[list[F]], Awaitable[None]], max_bytes: int = MAX_MESSAGE_BYTES
    ) -> None:
        self._write = write
        self._max_bytes = max_bytes
        self._frames: deque[tuple[F, int]] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, frame: F) -> None:
        self._frames.append((frame, frame.ByteSize()))
        self._ready.set()

    def close(self) -> None:
        """``run`` returns once what is queued is written."""
        self._closed = True
        self._ready.set()

    async def run(self) -> None:
        while True:
            if not self._frames:
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            await self._gather()
            await self._write(self._take())

    async def _gather(self) -> None:
        """Let the burst of work under way add its frames to this message: yield to the event loop
        while each pass adds frames, at most ``GATHER_PASSES`` times. When nothing else is going on
        this costs one pass of an idle loop (microseconds); under load each pass runs the callbacks
        that were ready, which is where the other requests' frames come from."""
        for _ in range(GATHER_PASSES):
            queued = len(self._frames)
            await asyncio.sleep(0)
            if len(self._frames) == queued or self._closed:
                return

    def _take(self) -> list[F]:
        frame, size = self._frames.popleft()
        batch, total = [frame], size
        while self._frames and total + self._frames[0][1] <= self._max_bytes:
            frame, size = self._frames.popleft()
            batch.append(frame)
            total += size
        return batch
