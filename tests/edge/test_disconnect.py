"""DisconnectWatch: the serving task is cancelled when, and only when, the client goes while it is watched."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from services.edge.disconnect import DisconnectWatch


class _Client:
    """The ASGI ``receive`` of a request whose body has been read: it answers once the client hangs up."""

    def __init__(self) -> None:
        self.hung_up = asyncio.Event()
        self.receives = 0

    async def receive(self) -> Message:
        self.receives += 1
        await self.hung_up.wait()
        return {"type": "http.disconnect"}


@pytest.mark.parametrize("listen_after", [0.0, 0.05])
async def test_a_client_that_leaves_cancels_the_serving_task_and_the_cancellation_is_absorbed(
    listen_after: float
) -> None:
    """Whether the client leaves before the listener starts or after."""
    client = _Client()
    outcome: list[str] = []

    async def serve() -> None:
        watch = DisconnectWatch(client.receive, listen_after)
        try:
            await asyncio.sleep(30)  # the router call
            outcome.append("answered")
        except asyncio.CancelledError:
            assert watch.absorb() and watch.gone
            assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
            outcome.append("client gone")
        await asyncio.sleep(0)  # the clean-up may await: no cancellation left pending
        outcome.append("cleaned up")

    serving = asyncio.create_task(serve())
    await asyncio.sleep(0.01)
    client.hung_up.set()
    await asyncio.wait_for(serving, 2)
    assert outcome == ["client gone", "cleaned up"] and not serving.cancelled()


async def test_nothing_is_cancelled_once_the_watch_is_stopped() -> None:
    client = _Client()

    async def serve() -> str:
        watch = DisconnectWatch(client.receive, listen_after=0)
        await asyncio.sleep(0.01)
        watch.stop()
        watch.stop()  # idempotent
        client.hung_up.set()
        await asyncio.sleep(0.05)  # the answer being written when the client goes
        return "finished"

    assert await asyncio.wait_for(serve(), 2) == "finished"


async def test_a_cancellation_from_elsewhere_is_not_absorbed() -> None:
    client = _Client()
    absorbed: list[bool] = []

    async def serve() -> None:
        watch = DisconnectWatch(client.receive, listen_after=0)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            absorbed.append(watch.absorb())
            raise

    serving = asyncio.create_task(serve())
    await asyncio.sleep(0.01)
    serving.cancel()  # shutdown
    with pytest.raises(asyncio.CancelledError):
        await serving
    client.hung_up.set()
    await asyncio.sleep(0.01)
    assert absorbed == [False] and client.receives == 1


async def test_a_request_over_before_the_listener_is_due_never_starts_one() -> None:
    """The common case costs a timer, not a task: nothing ever calls receive()."""
    client = _Client()

    async def serve() -> None:
        watch = DisconnectWatch(client.receive, listen_after=0.05)
        await asyncio.sleep(0.01)
        watch.stop()

    await serve()
    client.hung_up.set()
    await asyncio.sleep(0.1)
    assert client.receives == 0
