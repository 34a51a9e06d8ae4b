"""Metering's process: the usage.v1 consumer into the store, the usage API over gRPC, the ops endpoints
and the /ops/usage page.

Start-up: the store opens and the usage API serves at once (it needs only the store). Kafka is connected
in the background, retried until it answers: the producer (dead letters), then the catalog.v1 snapshot,
and only once that snapshot has caught up does the usage consumer start — an event is never priced from
a half-loaded price list. On SIGTERM: gRPC stops taking calls and lets in-flight ones finish, the
consumer finishes (and commits) or rewinds the batch in hand, then the clients close.
"""

from __future__ import annotations

import asyncio
import gc

from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2
from starlette.applications import Starlette

from services.common.events.catalog import CatalogEventV1
from services.common.kafka.batch_consumer import BatchConsumer
from services.common.kafka.producer import EventProducer
from services.common.kafka.snapshot import CompactedSnapshot
from services.common.lifecycle import serve_http
from services.common.manage.grpc_server import ManagementService, build_server
from services.common.ops import ops_routes
from services.common.price_book import PriceBook
from services.common.retry import keep_trying
from services.metering.api.context import Deps
from services.metering.api.dispatch import dispatch
from services.metering.consumer import GROUP_ID, build_consumer
from services.metering.ops_page import ops_usage_route
from services.metering.processor import UsageRow
from services.metering.settings import MeteringSettings
from services.metering.store import UsageStore
from services.metering.store.open import open_store

__all__ = ["GROUP_ID", "KafkaSide", "main"]


class KafkaSide:
    """Producer, catalog snapshot and consumer, started in that order (each step once)."""

    def __init__(self, settings: MeteringSettings, store: UsageStore, group_id: str = GROUP_ID) -> None:
        self.prices = PriceBook()
        self.catalog = CompactedSnapshot(settings, "catalog.v1", CatalogEventV1.from_bytes, self.prices.apply)
        self.producer = EventProducer(settings, client_id="metering")
        self.consumer: BatchConsumer[UsageRow] = build_consumer(
            settings, store, self.prices, self.producer, group_id
        )
        self._catalog_started = False

    async def start(self) -> None:
        if not self.producer.started:
            await self.producer.start()
        if not self._catalog_started:
            await self.catalog.start()
            self._catalog_started = True

    async def run(self, stop: asyncio.Event) -> None:
        if not await keep_trying(self.start, "kafka", stop):
            return
        if not await self.catalog.caught_up(stop):
            return
        if await keep_trying(self.consumer.start, "usage consumer", stop):
            await self.consumer.run(stop)

    async def close(self) -> None:
        await self.consumer.stop()  # also when never started: it owns a client either way
        await self.catalog.stop()
        await self.producer.stop()


async def main(settings: MeteringSettings, stop: asyncio.Event) -> None:
    store = await open_store(settings)
    kafka = KafkaSide(settings, store)
    health = health_aio.HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    server = build_server(ManagementService(Deps(store), dispatch), health)
    server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()

    async def store_ready() -> bool:
        rows = await store.query(
            "SELECT count() AS n FROM system.columns WHERE table = 'usage_raw' AND name = 'cost_micros'"
        )
        return bool(rows and int(rows[0]["n"]) == 1)

    async def kafka_ready() -> bool:
        return kafka.producer.started and kafka.consumer.assigned() and await kafka.producer.ping()

    async def catalog_ready() -> bool:
        return kafka.catalog.ready.is_set()

    checks = {"store": store_ready, "kafka": kafka_ready, "catalog": catalog_ready}
    app = Starlette(routes=[*ops_routes("metering", checks), ops_usage_route(store)])
    # Everything allocated so far lives as long as the process: keep it out of the collector's scans.
    # The consumer allocates tens of thousands of short-lived event objects per batch, and full
    # collections that re-scan start-up objects cost ~15 % of its throughput (measured, bench).
    gc.collect()
    gc.freeze()
    consuming = asyncio.create_task(kafka.run(stop), name="usage-consumer")
    try:
        await serve_http(app, settings.http_host, settings.http_port, stop, settings.shutdown_grace_seconds)
    finally:
        stop.set()
        await health.enter_graceful_shutdown()
        await server.stop(grace=settings.shutdown_grace_seconds)
        await consuming  # finishes (and commits) or rewinds the batch in hand
        await kafka.close()
        await store.close()
