"""The one way services publish events: acks=all and, on Kafka, the idempotent producer.

Idempotence makes broker-side retries safe (no duplicate on a lost ack); consumers are idempotent by
event id as well, so a publish retried by us is also harmless. Tansu (light mode) does not support
InitProducerId, so idempotence is switched off there — one of the reasons it is not durable mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2

from services.common.events.base import Event
from services.common.settings import ServiceSettings

log = structlog.get_logger(__name__)


class KeyPartitioner:
    """aiokafka's default partitioner (the Java client's murmur2 of the key), remembered per key.

    The hash is pure Python, about 8 µs a record, and the edge publishes two records keyed by account
    for every API request; accounts are few, so nearly every record finds its partition here. Same
    answer as the default, so records keep landing where other producers put the same key.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._max_keys = max_keys
        self._known: dict[tuple[bytes, int], int] = {}
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        slot = (key, len(all_partitions))
        index = self._known.get(slot)
        if index is None:
            if len(self._known) >= self._max_keys:
                self._known.clear()
            index = (murmur2(key) & 0x7FFFFFFF) % len(all_partitions)
            self._known[slot] = index
        return all_partitions[index]


class EventProducer:
    def __init__(self, settings: ServiceSettings, client_id: str, linger_ms: int = 5) -> None:
        """``linger_ms``: how long a record may wait for others to share its produce request. Each
        request costs the producer CPU, so a process that publishes on every API request (the edge)
        lingers longer; a few ms suit everything else."""
        self._settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=settings.bus == "kafka",
            linger_ms=linger_ms,
            partitioner=KeyPartitioner(),
            request_timeout_ms=15000,
            retry_backoff_ms=200,
        )
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        """Flush what is buffered, then close: nothing accepted by ``publish`` is dropped."""
        if self._started:
            await self._producer.stop()
            self._started = False

    @property
    def started(self) -> bool:
        return self._started

    async def publish(self, topic: str, key: str, event: Event | None) -> None:
        """Send and wait for the broker's ack. ``None`` publishes a tombstone (compacted topics)."""
        value = event.to_bytes() if event is not None else None
        await self._producer.send_and_wait(
            self._settings.topic(topic), value=value, key=key.encode()
        )

    async def publish_many(
        self, topic: str, records: list[tuple[bytes, bytes]]
    ) -> list[BaseException | None]:
        """Send ``(key, value)`` records in order and wait for every ack; one result per record.

        The hot path's way to publish: each record is handed to the producer's batch in turn and
        only the acknowledgements are awaited together (futures, not a task per record), which is
        most of what a per-event ``publish`` costs in CPU.
        """
        full = self._settings.topic(topic)
        acks: list[asyncio.Future[object] | BaseException] = []
        for key, value in records:
            try:
                acks.append(await self._producer.send(full, value=value, key=key))
            except Exception as exc:  # noqa: BLE001 - reported per record, like the acks below
                acks.append(exc)
        results: list[BaseException | None] = []
        for ack in acks:
            if isinstance(ack, BaseException):
                results.append(ack)
                continue
            try:
                await ack
                results.append(None)
            except Exception as exc:  # noqa: BLE001 - the caller retries what failed
                results.append(exc)
        return results

    async def publish_raw(self, full_topic: str, key: bytes | None, value: bytes) -> None:
        """For dead-letter copies of records that never parsed into an event."""
        await self._producer.send_and_wait(full_topic, value=value, key=key)

    async def ping(self, timeout: float = 2.0) -> bool:
        """Readiness: the cluster answers a metadata request."""
        try:
            await asyncio.wait_for(self._producer.client.force_metadata_update(), timeout)
        except (TimeoutError, OSError):
            return False
        return bool(self._producer.client.cluster.brokers())
