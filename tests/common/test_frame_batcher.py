"""FrameBatcher: what is ready while a message is being written goes out as the next message."""

from __future__ import annotations

import asyncio

from services.common.frame_batcher import FrameBatcher
from tollgate.router.v1 import router_pb2


def _frame(call_id: int, text: str = "") -> router_pb2.RouterFrame:
    return router_pb2.RouterFrame(
        call_id=call_id, whole=router_pb2.CompleteResponse(text=text)
    )


class _SlowWire:
    """Each write takes until ``release`` is set, like a gRPC write waiting on the transport."""

    def __init__(self) -> None:
        self.messages: list[list[int]] = []
        self.release = asyncio.Event()

    async def write(self, frames: list[router_pb2.RouterFrame]) -> None:
        self.messages.append([f.call_id for f in frames])
        await self.release.wait()
        self.release.clear()


async def test_frames_queued_during_a_write_share_the_next_message() -> None:
    wire = _SlowWire()
    batcher: FrameBatcher[router_pb2.RouterFrame] = FrameBatcher(wire.write)
    writing = asyncio.create_task(batcher.run())
    batcher.put(_frame(1))
    await asyncio.sleep(0.01)  # the first message is being written
    for call_id in (2, 3, 4):
        batcher.put(_frame(call_id))
    wire.release.set()
    await asyncio.sleep(0.01)
    wire.release.set()
    batcher.close()
    await asyncio.wait_for(writing, 5)
    assert wire.messages == [[1], [2, 3, 4]]


async def test_an_idle_writer_sends_each_frame_at_once() -> None:
    sent: list[list[int]] = []

    async def write(frames: list[router_pb2.RouterFrame]) -> None:
        sent.append([f.call_id for f in frames])

    batcher: FrameBatcher[router_pb2.RouterFrame] = FrameBatcher(write)
    writing = asyncio.create_task(batcher.run())
    for call_id in (1, 2):
        batcher.put(_frame(call_id))
        await asyncio.sleep(0.01)
        assert sent[-1] == [call_id]  # no waiting for company
    batcher.close()
    await asyncio.wait_for(writing, 5)


async def test_a_message_is_cut_at_max_bytes_and_a_big_frame_travels_alone() -> None:
    sent: list[list[int]] = []

    async def write(frames: list[router_pb2.RouterFrame]) -> None:
        sent.append([f.call_id for f in frames])

    small = _frame(1, "x" * 300).ByteSize()
    batcher: FrameBatcher[router_pb2.RouterFrame] = FrameBatcher(write, max_bytes=small * 2)
    for call_id in (1, 2, 3):
        batcher.put(_frame(call_id, "x" * 300))
    batcher.put(_frame(4, "y" * 5000))
    batcher.put(_frame(5, "x" * 300))
    batcher.close()
    await asyncio.wait_for(batcher.run(), 5)
    assert sent == [[1, 2], [3], [4], [5]]


async def test_close_writes_what_is_queued_first() -> None:
    sent: list[int] = []

    async def write(frames: list[router_pb2.RouterFrame]) -> None:
        sent.extend(f.call_id for f in frames)

    batcher: FrameBatcher[router_pb2.RouterFrame] = FrameBatcher(write)
    for call_id in range(1, 6):
        batcher.put(_frame(call_id))
    batcher.close()
    await asyncio.wait_for(batcher.run(), 5)
    assert sent == [1, 2, 3, 4, 5]


async def test_frames_from_work_under_way_join_the_message_being_gathered() -> None:
    """Requests already being handled reach the writer a pass or two of the event loop later; the
    writer yields while frames keep coming, so they share its message instead of each paying one."""
    sent: list[list[int]] = []

    async def write(frames: list[router_pb2.RouterFrame]) -> None:
        sent.append([f.call_id for f in frames])

    batcher: FrameBatcher[router_pb2.RouterFrame] = FrameBatcher(write)
    writing = asyncio.create_task(batcher.run())
    await asyncio.sleep(0.01)  # the writer is idle

    async def handled(call_id: int) -> None:
        for _ in range(call_id):  # request k needs k passes of the loop before its frame is ready
            await asyncio.sleep(0)
        batcher.put(_frame(call_id))

    work = [asyncio.create_task(handled(call_id)) for call_id in (1, 2, 3)]
    await asyncio.gather(*work)
    await asyncio.sleep(0.01)
    batcher.close()
    await asyncio.wait_for(writing, 5)
    assert sent == [[1, 2, 3]]
