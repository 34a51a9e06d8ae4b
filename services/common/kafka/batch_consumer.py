"""The consumer pattern of every service: a pure processor plus a batching writer.

    poll ─▶ accumulate (size / time bound) ─▶ processor(records) ─▶ writer.write(rows)
                                                   │                     │ ok
                                                   ▼ bad records         ▼
                                            dead-letter topic      commit offsets

Offsets are committed only after the writer succeeded (and dead letters were acknowledged). When the
writer fails, the consumer seeks back to the first offset of the batch and tries again after a
backoff: the batch is redelivered, so writers must be idempotent (metering dedupes by request id).
Auto-commit is off, so a crash at any point means "redeliver from the last commit", never "lose".

With ``pipeline=True`` the next batch is polled and processed while the previous one is being written
(the writer's I/O overlaps the processor's CPU). At most one write is in flight and commits stay in
order, because a batch's commit is the last step of its own write; a failed write rewinds it and the
batch processed behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeAlias, TypeVar

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import Counter

from services.common.kafka.producer import EventProducer
from services.common.settings import ServiceSettings

log = structlog.get_logger(__name__)
Row = TypeVar("Row")
Row_contra = TypeVar("Row_contra", contravariant=True)
Record: TypeAlias = ConsumerRecord[bytes, bytes]

BATCHES = Counter("tollgate_consumer_batches_total", "Batches handled", ["group", "outcome"])
RECORDS = Counter("tollgate_consumer_records_total", "Records handled", ["group", "outcome"])


@dataclass(frozen=True)
class DeadLetter:
    record: Record
    reason: str


@dataclass
class ProcessResult(Generic[Row]):
    rows: list[Row] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


Processor = Callable[[Sequence[Record]], ProcessResult[Row]]


class Writer(Protocol[Row_contra]):
    async def write(self, rows: Sequence[Row_contra]) -> None: ...


@dataclass(frozen=True)
class BatchBounds:
    max_records: int = 5000
    max_wait_seconds: float = 0.5
    retry_backoff_seconds: float = 1.0


class BatchConsumer(Generic[Row]):
    def __init__(
        self,
        *,
        settings: ServiceSettings,
        topics: Sequence[str],
        group_id: str,
        processor: Processor[Row],
        writer: Writer[Row],
        dead_letter_topic: str | None = None,
        producer: EventProducer | None = None,
        bounds: BatchBounds | None = None,
        pipeline: bool = False,
    ) -> None:
        if dead_letter_topic is not None and producer is None:
            raise ValueError("a dead-letter topic needs a producer")
        self._settings = settings
        self._group = settings.topic(group_id)
        self._processor = processor
        self._writer = writer
        self._dlq = settings.topic(dead_letter_topic) if dead_letter_topic else None
        self._producer = producer
        self._bounds = bounds or BatchBounds()
        self._pipeline = pipeline
        self._consumer = AIOKafkaConsumer(
            *(settings.topic(t) for t in topics),
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
            max_poll_records=self._bounds.max_records,
        )
        self.committed_batches = 0

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    async def _poll_batch(self, stop: asyncio.Event) -> list[Record]:
        """Gather records until the size bound, or the time bound after the first record."""
        records: list[Record] = []
        first_at: float | None = None
        while len(records) < self._bounds.max_records and not stop.is_set():
            if first_at is None:
                timeout = self._bounds.max_wait_seconds
            else:
                timeout = self._bounds.max_wait_seconds - (time.monotonic() - first_at)
                if timeout <= 0:
                    break
            polled = await self._consumer.getmany(
                timeout_ms=int(timeout * 1000), max_records=self._bounds.max_records - len(records)
            )
            for part in polled.values():
                records.extend(part)
            if records and first_at is None:
                first_at = time.monotonic()
            if not polled and first_at is not None:
                break
        return records

    async def _handle(self, records: list[Record]) -> None:
        await self._finish(records, self._processor(records))

    async def _finish(self, records: list[Record], result: ProcessResult[Row]) -> None:
        await self._writer.write(result.rows)
        if result.dead_letters and self._producer is not None and self._dlq is not None:
            for dead in result.dead_letters:
                await self._producer.publish_raw(
                    self._dlq, dead.record.key, _dead_letter_value(dead)
                )
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            if tp not in offsets or offsets[tp].offset < rec.offset + 1:
                offsets[tp] = OffsetAndMetadata(rec.offset + 1, "")
        await self._consumer.commit(offsets)
        self.committed_batches += 1
        RECORDS.labels(self._group, "written").inc(len(result.rows))
        RECORDS.labels(self._group, "dead_letter").inc(len(result.dead_letters))

    def _rewind(self, records: list[Record]) -> None:
        firsts: dict[TopicPartition, int] = {}
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            firsts[tp] = min(firsts.get(tp, rec.offset), rec.offset)
        for tp, offset in firsts.items():
            if tp in self._consumer.assignment():
                self._consumer.seek(tp, offset)

    async def _failed(self, records: list[Record], exc: Exception, stop: asyncio.Event) -> None:
        BATCHES.labels(self._group, "failed").inc()
        log.warning("batch_failed", group=self._group, records=len(records), error=str(exc))
        self._rewind(records)
        try:
            await asyncio.wait_for(stop.wait(), self._bounds.retry_backoff_seconds)
        except TimeoutError:
            pass

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished (or rewound) first."""
        if self._pipeline:
            await self._run_pipelined(stop)
            return
        while not stop.is_set():
            records = await self._poll_batch(stop)
            if not records:
                continue
            try:
                await self._handle(records)
                BATCHES.labels(self._group, "committed").inc()
            except Exception as exc:  # noqa: BLE001 - any writer failure means: redeliver, retry
                await self._failed(records, exc, stop)

    async def _run_pipelined(self, stop: asyncio.Event) -> None:
        in_flight: tuple[asyncio.Task[None], list[Record]] | None = None
        while not stop.is_set() or in_flight is not None:
            records = [] if stop.is_set() else await self._poll_batch(stop)
            result: ProcessResult[Row] | None = None
            failure: Exception | None = None
            if records:
                try:
                    result = self._processor(records)
                except Exception as exc:  # noqa: BLE001 - handled once the write in flight is done
                    failure = exc
            if in_flight is not None:
                task, previous = in_flight
                in_flight = None
                try:
                    await task
                    BATCHES.labels(self._group, "committed").inc()
                except Exception as exc:  # noqa: BLE001 - redeliver both: the failed one and this one
                    await self._failed(previous + records, exc, stop)
                    continue
            if failure is not None:
                await self._failed(records, failure, stop)
            elif result is not None:
                in_flight = (asyncio.create_task(self._finish(records, result)), records)


def _dead_letter_value(dead: DeadLetter) -> bytes:
    rec = dead.record
    return orjson.dumps({
        "reason": dead.reason,
        "topic": rec.topic,
        "partition": rec.partition,
        "offset": rec.offset,
        "value": (rec.value or b"").decode("utf-8", errors="replace"),
    })
