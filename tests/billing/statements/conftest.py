"""Fixtures of the statement tests: real PostgreSQL (billing's database, with the ledger), real Kafka,
and a real metering — its own Kafka side (catalog snapshot → usage consumer) writing into a chDB store
of its own, and its usage API served over gRPC — so usage reaches statements the way it does in
production: usage.v1 → metering's consumer → rollups → ``GET /v1/manage/usage`` over gRPC.

Every test makes its own accounts, so what one test closes or posts never meets another's numbers.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import grpc
import orjson
import pytest
from grpc_health.v1 import _async as health_aio

from infra.stack.platform import Platform
from infra.stack.ports import free_port
from services.billing.ledger import Entry, post
from services.billing.manage.dispatch import dispatch
from services.billing.statements.context import StatementsDeps
from services.billing.statements.usage_client import MeteringUsage
from services.common.manage.context import Caller
from services.common.manage.dispatch import Answer
from services.common.manage.grpc_server import ManagementService, build_server
from services.metering.api.context import Deps as MeteringDeps
from services.metering.api.dispatch import dispatch as metering_dispatch
from services.metering.migrate import migrate
from services.metering.settings import MeteringSettings
from services.metering.store.chdb_store import ChdbStore
from tests.billing.conftest import ADMIN, Manage
from tests.metering.kafka import caught_up, metering_settings, produce, running
from tollgate.manage.v1 import manage_pb2, manage_pb2_grpc

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # November 2026 is finished and past a 24 h grace
_keys = itertools.count()


@dataclass
class Metering:
    settings: MeteringSettings
    address: str
    produced: int = 0

    async def ingest(self, events: list[dict[str, Any]]) -> None:
        """Send usage events to usage.v1 and wait until metering has committed them (in its rollups)."""
        self.produced += await produce(self.settings, events)
        await caught_up(self.settings, self.produced)


@pytest.fixture(scope="module")
async def metering(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Metering]:
    settings = await metering_settings(platform.bus.bootstrap)
    store = ChdbStore(str(Path(tmp_path_factory.mktemp("statements")) / "chdb"))
    await migrate(store)
    port = free_port()
    server = build_server(ManagementService(MeteringDeps(store), metering_dispatch), health_aio.HealthServicer())
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        async with running(settings, store):
            yield Metering(settings, f"127.0.0.1:{port}")
    finally:
        await server.stop(grace=None)
        await store.close()


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Api:
    """Billing's management API in-process, with statements wired to the real metering."""

    manage: Manage
    metering: Metering
    clock: Clock
    channel: grpc.aio.Channel
    accounts: list[str] = field(default_factory=list)

    async def call(self, caller: Caller, method: str, path: str, query: str = "") -> tuple[int, Any]:
        return await self.manage.call(caller, method, path, None, query)

    async def raw(self, caller: Caller, method: str, path: str, query: str = "") -> Answer:
        return await dispatch.answer(self.manage.deps, caller, method, path, query, b"", "req_test")

    async def account(self, name: str = "stmt", parent_id: str | None = None) -> str:
        body: dict[str, Any] = {"name": name, "billing": "prepaid"}
        if parent_id is not None:
            body["parent_id"] = parent_id
        made = await self.manage.ok(ADMIN, "POST", "/v1/manage/accounts", body)
        return str(made["id"])

    async def post(self, account_id: str, kind: str, amount_micros: int, occurred_at: datetime) -> None:
        async with self.manage.pool.acquire() as conn, conn.transaction():
            await post(conn, Entry(account_id=account_id, kind=kind,  # type: ignore[arg-type]
                                   amount_micros=amount_micros, idempotency_key=f"test:{next(_keys)}:{kind}",
                                   occurred_at=occurred_at))

    async def statement(self, account_id: str, period: str, caller: Caller = ADMIN) -> dict[str, Any]:
        status, body = await self.call(caller, "GET", f"/v1/manage/accounts/{account_id}/statements/{period}")
        assert status == 200, body
        return dict(body)

    async def metering_totals(self, account_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        """Metering's own totals for the period, asked directly with no breakdown: the reference."""
        query = urlencode({"account_id": account_id, "from": f"{start:%Y-%m-%dT%H:%M:%SZ}",
                           "to": f"{end:%Y-%m-%dT%H:%M:%SZ}"})
        reply = await manage_pb2_grpc.ManagementServiceStub(self.channel).Call(manage_pb2.ManageRequest(
            caller=manage_pb2.Caller(admin=True), method="GET", path="/v1/manage/usage", query=query))
        assert reply.status == 200, reply.body
        return dict(orjson.loads(reply.body)["totals"])


@pytest.fixture(scope="module")
async def api(manage: Manage, metering: Metering) -> AsyncIterator[Api]:
    clock = Clock()
    async with grpc.aio.insecure_channel(metering.address) as channel:
        deps = dataclasses.replace(manage.deps, statements=StatementsDeps(
            MeteringUsage(channel), grace=timedelta(hours=24), now=clock))
        yield Api(Manage(deps, manage.pool), metering, clock, channel)
