"""Getting usage events from the request path to Kafka without blocking it and without losing any.

    emit(event) ─▶ this loop tick's list ─▶ appended to the spool at the end of the tick (one write,
    (no I/O, no await)                       no fsync) and kept in memory ─▶ sender task: publish in
                                             order, ack → advance the cursor
                   syncer task: fsync the spool every ``fsync_seconds`` (a worker thread)

Every event is in the spool's file before it is sent, from the tick it was emitted in: a process that
dies loses nothing, a machine that dies loses at most the events of the last ``fsync_seconds`` that
Kafka had not yet taken. The cursor moves only past events Kafka acknowledged (acks=all). When Kafka
is unreachable the sender retries the same batch with a backoff while the spool grows; when Kafka
returns it drains in order, from memory while what it sends was just appended, from disk otherwise.
A crash between an acknowledgement and the cursor's write resends a few events: metering is
idempotent by request id, so that is harmless, and losing one would not be.

The spool is bounded (``max_bytes``): above it the edge raises an alarm (log + gauge) and stops
admitting new requests (``accepting`` is false) — serving what cannot be recorded would be serving
for free. The same holds while the spool cannot be written at all (a full disk): the events stay in
memory and the write is retried. Requests already admitted still emit their events.

Why appends happen on the event loop: one ``write`` of a tick's events into the page cache costs a few
µs, while the old design handed each 5 ms batch to worker threads four times (append, read back,
advance, empty), and batching ten times fewer of them saved 0.23 ms of CPU per request in the bench
(docs/benchmarks.md). Only fsyncs and cursor writes, which can block for milliseconds, go to a thread.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from prometheus_client import Counter, Gauge

from services.common.events.usage import UsageEventV1
from services.common.kafka.producer import EventProducer
from services.edge.usage.recent import RecentRecords
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
        self, producer: EventProducer, spool: Spool, max_bytes: int, fsync_seconds: float = 0.02,
        retry_seconds: float = 1.0, memory_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._producer = producer
        self._spool = spool
        self._max_bytes = max_bytes
        self._fsync_seconds = fsync_seconds
        self._retry_seconds = retry_seconds
        self._recent = RecentRecords(memory_bytes)
        self._pending: list[bytes] = []  # emitted this tick (or waiting for the disk to take them)
        self._append_due = False
        self._write_failed = False
        self._appended = asyncio.Event()
        self._acked = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.accepting = True

    def emit(self, event: UsageEventV1) -> None:
        self._pending.append(_record(event))  # unbounded in memory: bounded by the admissions it follows
        if not self._append_due:
            self._append_due = True
            asyncio.get_running_loop().call_soon(self._append)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="usage-sender"),
            asyncio.create_task(self._sync_loop(), name="usage-spool-fsync"),
            asyncio.create_task(self._watch_loop(), name="usage-spool-watch"),
        ]

    def _append(self) -> None:
        self._append_due = False
        if not self._pending:
            return
        records, self._pending = self._pending, []
        start = self._spool.end
        try:
            end = self._spool.append(records)
        except OSError as exc:
            self._pending = records + self._pending
            if not self._write_failed:
                log.error("usage_spool_write_failed", error=str(exc), events=len(self._pending))
            self._write_failed, self.accepting = True, False
            self._append_due = True
            asyncio.get_running_loop().call_later(self._retry_seconds, self._append)
            return
        if self._write_failed:
            log.info("usage_spool_write_recovered")
            self._write_failed = False
        self._recent.add(start, records, end)
        SPOOLED.inc(len(records))
        self._appended.set()

    async def _send_loop(self) -> None:
        while True:
            taken = self._recent.take(self._spool.cursor, BATCH)
            if taken is None:
                if self._spool.empty():
                    self._appended.clear()
                    await self._appended.wait()
                    continue
                taken = await asyncio.to_thread(self._spool.read, BATCH)  # older than memory holds
                if not taken[0]:
                    log.error("usage_spool_unreadable", cursor=str(self._spool.cursor))
                    await asyncio.sleep(self._retry_seconds)
                    continue
            records, position = taken
            if not await self._send(records):
                SEND_FAILURES.inc()
                await asyncio.sleep(self._retry_seconds)
                continue
            SENT.inc(len(records))
            if self._spool.advance(position):
                await asyncio.to_thread(self._spool.write_cursor)
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

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._fsync_seconds)
            if self._spool.synced < self._spool.end:
                try:
                    await asyncio.to_thread(self._spool.sync)
                except OSError as exc:  # the records are still in the page cache and still get sent
                    log.error("usage_spool_fsync_failed", error=str(exc))

    async def _watch_loop(self) -> None:
        while True:
            pending = await asyncio.to_thread(self._spool.pending_bytes)
            PENDING.set(pending)
            full = pending >= self._max_bytes
            if full and self.accepting:
                log.error("usage_spool_full", pending_bytes=pending, max_bytes=self._max_bytes)
            elif not full and not self.accepting and not self._write_failed:
                log.info("usage_spool_below_bound", pending_bytes=pending)
            self.accepting = not full and not self._write_failed
            FULL.set(int(full))
            await asyncio.sleep(1.0)

    async def drained(self, timeout: float) -> bool:
        """Wait until every emitted event is acknowledged by Kafka (tests, shutdown)."""
        try:
            async with asyncio.timeout(timeout):
                while self._pending or not self._spool.empty():
                    self._acked.clear()
                    await self._acked.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float = 5.0) -> None:
        """Put everything emitted in the spool, give Kafka ``timeout`` to take it, then stop. What
        Kafka did not take stays in the spool and is sent by the next start."""
        self._append()
        await self.drained(timeout)
        if self._pending:  # the spool could not be written until the end: nothing else can keep them
            log.error("usage_events_unwritten_at_stop", events=len(self._pending))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._spool.close()
