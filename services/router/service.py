"""Router's process: the catalog snapshot, the backend pool, the gRPC server, its ops endpoints."""

from __future__ import annotations

import asyncio

from grpc_health.v1 import _async as health_aio

from services.common.events.catalog import CatalogEventV1
from services.common.kafka.snapshot import CompactedSnapshot
from services.common.lifecycle import freeze_heap_when_ready, serve_http
from services.common.ops import ops_app
from services.common.retry import keep_trying
from services.router.backend_pool import BackendPool
from services.router.backends.http import ReadTimeouts, export_metrics
from services.router.routing import RoutingTable
from services.router.server import NOT_SERVING, SERVING, RouterService, build_server
from services.router.settings import RouterSettings


async def _watch(
    catalog: CompactedSnapshot[CatalogEventV1], table: RoutingTable, pool: BackendPool,
    servicer: health_aio.HealthServicer, settings: RouterSettings, stop: asyncio.Event,
) -> None:
    """gRPC health follows the catalog snapshot; deployments get active health checks."""
    if not await keep_trying(catalog.start, "catalog.v1 snapshot", stop):
        return
    while not stop.is_set():
        ready = catalog.ready.is_set()
        await servicer.set("", SERVING if ready else NOT_SERVING)
        if ready:
            await pool.check_health(list(table.deployments.values()))
        try:
            await asyncio.wait_for(stop.wait(), settings.health_check_seconds if ready else 0.2)
        except TimeoutError:
            pass


async def main(settings: RouterSettings, stop: asyncio.Event) -> None:
    pool = BackendPool(ReadTimeouts(
        before_output=settings.provider_first_output_timeout_seconds,
        after_output=settings.provider_timeout_seconds,
    ), max_connections=settings.provider_max_connections, pool_wait=settings.provider_pool_wait_seconds)
    export_metrics(pool.provider_http)
    table = RoutingTable(pool.is_healthy)
    catalog = CompactedSnapshot(settings, "catalog.v1", CatalogEventV1.from_bytes, on_change=table.apply)
    servicer = health_aio.HealthServicer()
    await servicer.set("", NOT_SERVING)
    service = RouterService(table, pool)
    server = build_server(service, servicer)
    server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()
    watching = asyncio.create_task(_watch(catalog, table, pool, servicer, settings, stop))
    freezing = asyncio.create_task(freeze_heap_when_ready(catalog.ready))

    async def catalog_ready() -> bool:
        return catalog.ready.is_set()

    app = ops_app("router", {"catalog_snapshot": catalog_ready})
    try:
        await serve_http(app, settings.http_host, settings.http_port, stop, settings.shutdown_grace_seconds)
    finally:
        freezing.cancel()
        await servicer.enter_graceful_shutdown()
        service.drain()  # edges open their next session elsewhere; calls in flight finish
        await server.stop(grace=settings.shutdown_grace_seconds)  # in-flight streams finish
        await watching
        await catalog.stop()
        await pool.close()
