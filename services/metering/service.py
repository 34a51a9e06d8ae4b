"""Metering's process: the usage.v1 consumer into the store, and its ops endpoints."""

from __future__ import annotations

import asyncio

from services.common.kafka.batch_consumer import BatchBounds, BatchConsumer
from services.common.kafka.producer import EventProducer
from services.common.lifecycle import serve_http
from services.common.ops import ops_app
from services.common.retry import keep_trying
from services.metering.processor import process_usage
from services.metering.settings import MeteringSettings
from services.metering.store.open import open_store
from services.metering.writer import UsageWriter

GROUP_ID = "metering.usage"


async def main(settings: MeteringSettings, stop: asyncio.Event) -> None:
    store = await open_store(settings)
    producer = EventProducer(settings, client_id="metering")
    consumer = BatchConsumer(
        settings=settings,
        topics=["usage.v1"],
        group_id=GROUP_ID,
        processor=process_usage,
        writer=UsageWriter(store),
        dead_letter_topic="usage.v1.dlq",
        producer=producer,
        bounds=BatchBounds(settings.batch_max_records, settings.batch_max_wait_seconds),
    )

    async def start_kafka() -> None:
        await producer.start()
        await consumer.start()

    async def consume() -> None:
        if await keep_trying(start_kafka, "kafka", stop):
            await consumer.run(stop)

    async def store_ready() -> bool:
        rows = await store.query("SELECT count() AS n FROM system.tables WHERE name = 'usage_raw'")
        return bool(rows and int(rows[0]["n"]) == 1)

    async def kafka_ready() -> bool:
        return producer.started and consumer.assigned() and await producer.ping()

    app = ops_app("metering", {"store": store_ready, "kafka": kafka_ready})
    consuming = asyncio.create_task(consume(), name="usage-consumer")
    try:
        await serve_http(app, settings.http_host, settings.http_port, stop, settings.shutdown_grace_seconds)
    finally:
        stop.set()
        await consuming  # finishes (and commits) or rewinds the batch in hand
        await consumer.stop()
        await producer.stop()
        await store.close()
