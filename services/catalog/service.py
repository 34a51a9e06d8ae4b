"""Catalog's process: the PostgreSQL pool, the Kafka producer, the ManagementService gRPC server, the
catalog.v1 outbox publisher, the scheduled sync and the ops endpoints.

Start-up never waits for Kafka (the outbox holds every change until it can be published, and /readyz
says not-ready meanwhile). On SIGTERM: gRPC stops taking calls and lets in-flight ones finish, the
scheduled sync stops between sources, the outbox makes one last pass, then the clients close.
"""

from __future__ import annotations

import asyncio

from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2

from services.catalog.manage.context import Deps
from services.catalog.manage.dispatch import dispatch
from services.catalog.outbox import OutboxPublisher
from services.catalog.settings import CatalogSettings, credential
from services.catalog.sync.runner import SyncConfig
from services.catalog.sync.schedule import run_schedule
from services.common.kafka.producer import EventProducer
from services.common.lifecycle import serve_http
from services.common.manage.grpc_server import ManagementService, build_server
from services.common.ops import ops_app
from services.common.pg import create_pool, pg_ready
from services.common.retry import keep_trying


def sync_config(settings: CatalogSettings) -> SyncConfig:
    return SyncConfig(
        max_bytes=settings.sync_max_bytes, timeout=settings.sync_timeout_seconds,
        factor=settings.sync_max_change_factor, policy=settings.sync_unknown_models,
        max_micros=settings.max_price_micros,
    )


async def main(settings: CatalogSettings, stop: asyncio.Event) -> None:
    pool = await create_pool(settings.database_url, settings.db_pool_size)
    producer = EventProducer(settings, client_id="catalog")
    outbox = OutboxPublisher(pool, producer, settings.outbox_interval_seconds)
    outbox_stop = asyncio.Event()  # set only once gRPC has drained: in-flight calls still flush
    config = sync_config(settings)
    deps = Deps(
        pool=pool, outbox=outbox, max_price_micros=settings.max_price_micros, sync_config=config,
        sync_sources={s.name: s for s in settings.sync_sources}, credential=credential,
        flush_timeout=settings.publish_wait_seconds,
    )
    health = health_aio.HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    server = build_server(ManagementService(deps, dispatch), health)
    server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()

    async def kafka_ready() -> bool:
        return producer.started and await producer.ping()

    tasks = [
        asyncio.create_task(keep_trying(producer.start, "kafka", stop), name="kafka-connect"),
        asyncio.create_task(outbox.run(outbox_stop), name="catalog-outbox"),
        asyncio.create_task(run_schedule(pool, settings.sync_sources, config, settings.sync_interval_seconds,
                                         outbox, credential, stop), name="catalog-sync"),
    ]
    app = ops_app("catalog", {"postgres": lambda: pg_ready(pool), "kafka": kafka_ready})
    try:
        await serve_http(app, settings.http_host, settings.http_port, stop, settings.shutdown_grace_seconds)
    finally:
        stop.set()
        await health.enter_graceful_shutdown()
        await server.stop(grace=settings.shutdown_grace_seconds)
        outbox_stop.set()
        await asyncio.gather(*tasks)
        await producer.stop()
        await pool.close()
