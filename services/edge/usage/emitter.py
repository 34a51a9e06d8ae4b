"""Getting usage events from the request path to Kafka without blocking it and without losing any.

    emit(event)  ─▶ memory queue ─▶ writer task: append a batch to the spool, fsync ─▶ sender task:
    (no I/O, no await)              (every few ms, or 500 events)                     read in order,
                                                                                      publish, ack →
                                                                                      advance cursor

Every event is on disk before it is sent, and the cursor moves only past events Kafka acknowledged
(acks=all). When Kafka is unreachable the sender keeps retrying the same batch with a backoff while the
spool grows; when Kafka returns it drains in order. A crash between an acknowledgement and the
cursor's move resends a few events: metering is idempotent by request id, so that is harmless, and
losing one would not be.

The spool is bounded (``max_bytes``): above it the edge raises an alarm (log + gauge) and stops
admitting new requests (``accepting`` is false) — serving what cannot be recorded would be serving
for free. Requests already admitted still write their events.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from prometheus_client import Counter, Gauge

from services.common.events.usage import UsageEventV1
from services.common.kafka.producer import EventProducer
from services.edge.usage.spool import Spool

log = structlog.get_logger(__name__)
SPOOLED = Counter("tollgate_usage_events_spooled_total", "usage.v1 events written to the local spool")
SENT = Counter("tollgate_usage_events_sent_total", "usage.v1 events acknowledged by Kafka")
SEND_FAILURES = Counter("tollgate_usage_send_failures_total", "failed attempts to send a spooled batch")
PENDING = Gauge("tollgate_usage_spool_pending_bytes", "spooled bytes not yet acknowledged by Kafka")
FULL = Gauge("tollgate_usage_spool_full", "1 while the spool is over its bound (new requests refused)")
BATCH = 500
SEPARATOR = b"\n"  # a spool record is "<account id>\n<event JSON>": ids never hold a newline


def _record(event: UsageEventV1) -> bytes:
    """The Kafka key and value of one event, as the spool keeps them (sent as they are)."""
    return event.account_id.encode() + SEPARATOR + event.to_bytes()


class UsageEmitter:
    def __init__(
        self, producer: EventProducer, spool: Spool, max_bytes: int, flush_seconds: float = 0.005,
        retry_seconds: float = 1.0,
    ) -> None:
        self._producer = producer
        self._spool = spool
        self._max_bytes = max_bytes
        self._flush_seconds = flush_seconds
        self._retry_seconds = retry_seconds
        self._queue: asyncio.Queue[UsageEventV1] = asyncio.Queue()
        self._written = asyncio.Event()
        self._acked = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.accepting = True

    def emit(self, event: UsageEventV1) -> None:
        self._queue.put_nowait(event)  # unbounded in memory: bounded by the admissions it follows

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="usage-spool-writer"),
            asyncio.create_task(self._send_loop(), name="usage-sender"),
            asyncio.create_task(self._watch_loop(), name="usage-spool-watch"),
        ]

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(self._flush_seconds)  # let a burst gather: one fsync per batch
            while len(batch) < BATCH * 4 and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            payloads = [_record(e) for e in batch]
            await asyncio.to_thread(self._spool.append, payloads)
            SPOOLED.inc(len(batch))
            for _ in batch:
                self._queue.task_done()
            self._written.set()

    async def _send_loop(self) -> None:
        while True:
            records, position = await asyncio.to_thread(self._spool.read, BATCH)
            if not records:
                self._written.clear()
                if await asyncio.to_thread(self._spool.empty):
                    await self._written.wait()
                continue
            if not await self._send(records):
                SEND_FAILURES.inc()
                await asyncio.sleep(self._retry_seconds)
                continue
            await asyncio.to_thread(self._spool.advance, position)
            SENT.inc(len(records))
            self._acked.set()

    async def _send(self, records: list[bytes]) -> bool:
        if not self._producer.started:
            return False
        pairs = []
        for record in records:
            key, _, value = record.partition(SEPARATOR)
            pairs.append((key, value))
        results = await self._producer.publish_many("usage.v1", pairs)
        failed = [r for r in results if r is not None]
        if failed:
            log.warning("usage_send_failed", events=len(records), error=type(failed[0]).__name__)
            return False
        return True

    async def _watch_loop(self) -> None:
        while True:
            pending = await asyncio.to_thread(self._spool.pending_bytes)
            PENDING.set(pending)
            full = pending >= self._max_bytes
            if full and self.accepting:
                log.error("usage_spool_full", pending_bytes=pending, max_bytes=self._max_bytes)
            elif not full and not self.accepting:
                log.info("usage_spool_below_bound", pending_bytes=pending)
            self.accepting = not full
            FULL.set(int(full))
            await asyncio.sleep(1.0)

    async def drained(self, timeout: float) -> bool:
        """Wait until every emitted event is acknowledged by Kafka (tests, shutdown)."""
        try:
            async with asyncio.timeout(timeout):
                await self._queue.join()
                while not await asyncio.to_thread(self._spool.empty):
                    self._acked.clear()
                    if await asyncio.to_thread(self._spool.empty):
                        break
                    await self._acked.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float = 5.0) -> None:
        """Put everything emitted on disk, give Kafka ``timeout`` to take it, then stop. What Kafka did
        not take stays in the spool and is sent by the next start."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        await self.drained(timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._spool.close()
