"""requests.v1 from the edge: one event per admission decision, sent off the request path.

The handler only puts the event in a bounded queue (no await, no I/O); one background task sends
what is queued in batches. requests.v1 is operational data (who was refused and why, and billing's
"last used" time of a key), not money: if Kafka is away long enough to fill the queue, new events
are dropped and counted rather than slowing a response. Usage events, which are money, take the
durable path instead.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from prometheus_client import Counter

from services.common.events.requests import RequestEventV1
from services.common.kafka.producer import EventProducer

log = structlog.get_logger(__name__)
DROPPED = Counter("tollgate_request_events_dropped_total", "requests.v1 events dropped (queue full)")
BATCH = 500


class RequestEvents:
    def __init__(self, producer: EventProducer, capacity: int = 10_000) -> None:
        self._producer = producer
        self._queue: asyncio.Queue[RequestEventV1] = asyncio.Queue(capacity)
        self._task: asyncio.Task[None] | None = None

    def emit(self, event: RequestEventV1) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            DROPPED.inc()

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name="requests.v1")

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._send(batch)
            for _ in batch:
                self._queue.task_done()

    async def _send(self, batch: list[RequestEventV1]) -> None:
        while True:
            if self._producer.started:
                results = await asyncio.gather(
                    *(self._producer.publish("requests.v1", e.account_id or "-", e) for e in batch),
                    return_exceptions=True,
                )
                failed = [e for e, r in zip(batch, results, strict=True) if isinstance(r, Exception)]
                if not failed:
                    return
                log.warning("request_events_retry", failed=len(failed))
                batch = failed
            await asyncio.sleep(1.0)

    async def stop(self, timeout: float = 5.0) -> None:
        """Give what is queued a chance to go out, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
