"""An in-memory view of a compacted topic (keys.v1, catalog.v1): latest value per record key.

Built by reading every partition from the beginning without a consumer group (every edge needs the
whole topic, not a share of it), then followed live. ``ready`` is set once the view has caught up with
the end offsets seen at start, so a service never answers from a half-loaded snapshot. Values carry a
``version``; an older version never replaces a newer one (redelivery, or a producer racing itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from services.common.settings import ServiceSettings

log = structlog.get_logger(__name__)


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=Versioned)


class CompactedSnapshot(Generic[V]):
    def __init__(
        self,
        settings: ServiceSettings,
        topic: str,
        parse: Callable[[bytes], V],
        on_change: Callable[[str, V | None], None] | None = None,
    ) -> None:
        self._settings = settings
        self._topic = settings.topic(topic)
        self._parse = parse
        self._on_change = on_change
        self._values: dict[str, V] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.applied = 0

    def get(self, key: str) -> V | None:
        return self._values.get(key)

    def items(self) -> Iterator[tuple[str, V]]:
        return iter(list(self._values.items()))

    def __len__(self) -> int:
        return len(self._values)

    def apply(self, key: str, value: bytes | None) -> None:
        """Apply one record: a tombstone deletes, a newer version replaces, an older one is dropped."""
        self.applied += 1
        if value is None:
            if self._values.pop(key, None) is not None and self._on_change:
                self._on_change(key, None)
            return
        try:
            parsed = self._parse(value)
        except ValidationError as exc:
            log.error("snapshot_bad_record", topic=self._topic, record_key=key, errors=exc.error_count())
            return
        current = self._values.get(key)
        if current is not None and current.version > parsed.version:
            return
        self._values[key] = parsed
        if self._on_change:
            self._on_change(key, parsed)

    async def caught_up(self, stop: asyncio.Event) -> bool:
        """Wait until the snapshot holds the whole table (True), or until ``stop`` (False): what a
        consumer that depends on it waits for before it starts."""
        ready, stopping = asyncio.create_task(self.ready.wait()), asyncio.create_task(stop.wait())
        await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        stopping.cancel()
        return self.ready.is_set() and not stop.is_set()

    async def start(self, timeout: float = 30.0) -> None:
        # Subscribing without a group makes aiokafka assign every partition of the topic to us, and
        # with no committed offsets "earliest" starts each at its beginning: the whole table.
        consumer = AIOKafkaConsumer(
            self._topic,
            bootstrap_servers=self._settings.kafka_bootstrap,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not consumer.assignment():
            if loop.time() > deadline:
                await consumer.stop()
                raise RuntimeError(f"topic {self._topic} has no partitions (run the topic set-up first)")
            await asyncio.sleep(0.05)
        tps = sorted(consumer.assignment())
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(tps), name=f"snapshot:{self._topic}")

    async def _follow(self, tps: list[TopicPartition]) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        targets = await consumer.end_offsets(tps)
        pending = {tp for tp, end in targets.items() if end > 0}
        if not pending:
            self.ready.set()
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=10000)
            for tp, records in batch.items():
                for rec in records:
                    self.apply(rec.key.decode() if rec.key else "", rec.value)
                if tp in pending and await consumer.position(tp) >= targets[tp]:
                    pending.discard(tp)
            if pending:
                for tp in list(pending):
                    if await consumer.position(tp) >= targets[tp]:
                        pending.discard(tp)
            if not pending and not self.ready.is_set():
                log.info("snapshot_ready", topic=self._topic, entries=len(self._values))
                self.ready.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._consumer is not None:
            await self._consumer.stop()
