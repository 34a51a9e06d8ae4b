"""Edge's process: public HTTP app, Kafka producer and snapshots, Redis admission (and its lease
renewals), router and billing channels."""

from __future__ import annotations

import asyncio

from services.common.lifecycle import freeze_heap_when_ready, serve_http
from services.edge.app import build_app
from services.edge.dependencies import EdgeDeps
from services.edge.settings import EdgeSettings


async def main(settings: EdgeSettings, stop: asyncio.Event) -> None:
    deps = EdgeDeps.create(settings)
    connecting = asyncio.create_task(deps.connect(stop))
    renewing = asyncio.create_task(deps.admission.run_renewals(stop))
    freezing = asyncio.create_task(freeze_heap_when_ready(deps.keys.ready, deps.catalog.ready))
    deps.request_events.start()
    deps.usage.start()
    try:
        await serve_http(
            build_app(deps), settings.http_host, settings.http_port, stop, settings.shutdown_grace_seconds
        )
    finally:
        freezing.cancel()
        await connecting
        await renewing
        await deps.close()  # producer.stop() flushes every buffered event before exit
