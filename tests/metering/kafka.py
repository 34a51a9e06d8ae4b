"""Metering against the real broker, in this process: fresh topics, prices on catalog.v1, events on
usage.v1, and the service's own Kafka side (snapshot → consumer) running until the group has caught up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common.kafka.producer import EventProducer
from services.metering.consumer import GROUP_ID
from services.metering.service import KafkaSide
from services.metering.settings import MeteringSettings
from services.metering.store import UsageStore
from tests.kafka_helpers import committed_offsets, eventually, fresh_topics
from tests.metering.factory import catalog_events


async def metering_settings(bootstrap: str, **overrides: Any) -> MeteringSettings:
    """Settings on fresh topics (prices already published), small batches so that tests see several."""
    client = await fresh_topics(bootstrap)
    settings = MeteringSettings(
        kafka_bootstrap=bootstrap, topic_prefix=client.topic_prefix, http_port=0,
        **{"batch_max_records": 400, "batch_max_wait_seconds": 0.2, **overrides},
    )
    await publish_prices(settings)
    return settings


async def publish_prices(settings: MeteringSettings, events: Iterable[Any] | None = None) -> None:
    producer = EventProducer(settings, client_id="test-catalog")
    await producer.start()
    try:
        for event in events if events is not None else catalog_events():
            await producer.publish("catalog.v1", event.record_key, event)
    finally:
        await producer.stop()


async def produce(settings: MeteringSettings, values: Iterable[bytes | dict[str, Any]]) -> int:
    """Each value to usage.v1 in order, keyed by its account (as the edge keys them); returns how many.
    Sent in bulk and acknowledged (acks=all) before returning."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5,
                                enable_idempotence=True)
    await producer.start()
    sent = []
    try:
        for value in values:
            data = value if isinstance(value, bytes) else orjson.dumps(value)
            key = value["account_id"].encode() if isinstance(value, dict) and value.get("account_id") else b"x"
            sent.append(await producer.send(settings.topic("usage.v1"), data, key=key))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len(sent)


async def committed_total(settings: MeteringSettings, group: str = GROUP_ID) -> int:
    """Records committed by the group so far (0 while its coordinator is not there yet)."""
    try:
        return sum((await committed_offsets(settings.kafka_bootstrap, settings.topic(group))).values())
    except KafkaError:
        return 0


@asynccontextmanager
async def running(settings: MeteringSettings, store: UsageStore, group: str = GROUP_ID) -> AsyncIterator[KafkaSide]:
    """The service's Kafka side (producer, catalog snapshot, then the usage consumer) until the block ends."""
    side = KafkaSide(settings, store, group)
    stop = asyncio.Event()
    task = asyncio.create_task(side.run(stop))
    try:
        yield side
    finally:
        stop.set()
        await task
        await side.close()


async def caught_up(settings: MeteringSettings, produced: int, group: str = GROUP_ID, timeout: float = 60.0) -> None:
    async def done() -> bool:
        return await committed_total(settings, group) >= produced

    await eventually(done, timeout=timeout, what=f"{produced} usage records committed")
