"""Router's process: the gRPC server, its backend clients, its ops endpoints."""

from __future__ import annotations

import asyncio

from grpc_health.v1 import _async as health_aio

from services.common.lifecycle import serve_http
from services.common.ops import ops_app
from services.router.backends.triton import TritonBackend
from services.router.server import NOT_SERVING, SERVING, RouterService, build_server
from services.router.settings import RouterSettings

HEALTH_POLL_SECONDS = 1.0


async def _track_health(
    triton: TritonBackend, servicer: health_aio.HealthServicer, stop: asyncio.Event
) -> None:
    """Active health check: the gRPC health status follows Triton's readiness."""
    while not stop.is_set():
        try:
            ok = await triton.ready()
        except Exception:  # noqa: BLE001 - an unreachable backend is simply not serving
            ok = False
        await servicer.set("", SERVING if ok else NOT_SERVING)
        try:
            await asyncio.wait_for(stop.wait(), HEALTH_POLL_SECONDS)
        except TimeoutError:
            pass


async def main(settings: RouterSettings, stop: asyncio.Event) -> None:
    triton = TritonBackend(settings.triton_url, settings.triton_model)
    servicer = health_aio.HealthServicer()
    await servicer.set("", NOT_SERVING)
    server = build_server(RouterService(triton, settings.default_model), servicer)
    server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()
    tracking = asyncio.create_task(_track_health(triton, servicer, stop))

    async def triton_ready() -> bool:
        return await triton.ready()

    app = ops_app("router", {"triton": triton_ready})
    try:
        await serve_http(app, settings.http_host, settings.http_port, stop, settings.shutdown_grace_seconds)
    finally:
        await servicer.enter_graceful_shutdown()
        await server.stop(grace=settings.shutdown_grace_seconds)  # in-flight streams finish
        await tracking
        await triton.close()
