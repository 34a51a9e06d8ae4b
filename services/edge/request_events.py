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
from datetime import datetime

import structlog
from prometheus_client import Counter

from services.common.errors import TollgateError
from services.common.events.keys import KeyEventV1
from services.common.events.requests import RequestEventV1
from services.common.events.usage import Api
from services.common.kafka.producer import EventProducer
from services.edge.admission.reservation import Reservation

log = structlog.get_logger(__name__)
DROPPED = Counter("tollgate_request_events_dropped_total", "requests.v1 events dropped (queue full)")
BATCH = 500


def request_event(
    request_id: str, api: Api, key: KeyEventV1 | None, model: str, stream: bool, received_at: datetime,
    edge_id: str, reservation: Reservation | None, refusal: TollgateError | None,
) -> RequestEventV1:
    """The requests.v1 record of one admission decision (metadata only: never prompt text)."""
    return RequestEventV1(
        request_id=request_id, account_id=key.account_id if key else None, key_id=key.key_id if key else None,
        api=api, model=model[:256] or "-", stream=stream,
        decision="rejected" if refusal else "admitted",
        reject_code=((refusal.code or type(refusal).__name__)[:64]) if refusal else None,
        reserved_input_tokens=reservation.input_tokens if reservation else 0,
        reserved_output_tokens=reservation.output_tokens if reservation else 0,
        reserved_cost_micros=reservation.cost_micros if reservation else 0,
        received_at=received_at, edge_id=edge_id,
    )


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
                results = await self._producer.publish_many(
                    "requests.v1", [((e.account_id or "-").encode(), e.to_bytes()) for e in batch]
                )
                failed = [e for e, r in zip(batch, results, strict=True) if r is not None]
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
