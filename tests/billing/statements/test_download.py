"""The CSV statement through the real transport: billing's ManagementService over gRPC carries the
media type and filename, and the edge's management front door turns them into ``content-type:
text/csv`` and ``content-disposition: attachment`` (a JSON answer stays ``application/json``)."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import httpx
from grpc_health.v1 import _async as health_aio
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from infra.stack.ports import free_port
from services.billing.manage.dispatch import dispatch
from services.common.manage.grpc_server import ManagementService, build_server
from services.edge.request_id import RequestIdMiddleware
from services.edge.routes.manage import forward
from tests.billing.conftest import ADMIN
from tests.billing.statements.conftest import Api

ADMIN_KEY = "tg-admin-statements-test-0123456789"


async def test_the_edge_serves_a_csv_statement_as_a_download(api: Api) -> None:
    account = await api.account()
    await api.post(account, "topup", 1_000_000, api.clock.now.replace(day=1, hour=0))
    path = f"/v1/manage/accounts/{account}/statements/2026-11.csv"
    expected = await api.raw(ADMIN, "GET", path)
    port = free_port()
    server = build_server(ManagementService(api.manage.deps, dispatch), health_aio.HealthServicer())
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            settings = SimpleNamespace(admin_key=SecretStr(ADMIN_KEY), max_body_bytes=1 << 20,
                                       manage_timeout_seconds=10.0)
            app = Starlette(routes=[Route("/v1/manage/{rest:path}", forward, methods=["GET"])],
                            middleware=[Middleware(RequestIdMiddleware)])
            app.state.deps = SimpleNamespace(settings=settings, billing_channel=channel, key_index=None,
                                             metering_channel=channel, catalog_channel=channel)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge",
                                         headers={"authorization": f"Bearer {ADMIN_KEY}"}) as client:
                reply = await client.get(path)
                assert reply.status_code == 200
                assert reply.headers["content-type"] == "text/csv; charset=utf-8"
                assert reply.headers["content-disposition"] == (
                    f'attachment; filename="statement-{account}-2026-11.csv"')
                assert reply.content == expected.body
                as_json = await client.get(path.removesuffix(".csv"))
                assert as_json.headers["content-type"] == "application/json"
                assert "content-disposition" not in as_json.headers
                assert as_json.json()["account_id"] == account
    finally:
        await server.stop(grace=None)
