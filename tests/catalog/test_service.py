"""The catalog as a real process: ManagementService over gRPC, catalog.v1 within 2 s of the answer, the
scheduled sync, ops endpoints, a clean exit on SIGTERM; and the ``sync`` command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import orjson
import pytest

from infra.stack.platform import Platform
from infra.stack.ports import free_port
from infra.stack.services import ServiceProcess
from services.catalog.seed import SEED_FILE, load_seed, seed
from services.common.events.catalog import CatalogEventV1
from services.common.kafka.producer import EventProducer
from services.common.kafka.snapshot import CompactedSnapshot
from tests.catalog.conftest import TRITON, new_database
from tests.kafka_helpers import ClientSettings, fresh_topics
from tollgate.manage.v1 import manage_pb2, manage_pb2_grpc

ADMIN = manage_pb2.Caller(admin=True)
FEEDS = Path(__file__).parent / "feeds"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    process: ServiceProcess
    stub: manage_pb2_grpc.ManagementServiceStub
    seen: CompactedSnapshot[CatalogEventV1]
    dsn: str
    env: dict[str, str]

    async def call(self, method: str, path: str, body: Any = None, caller: manage_pb2.Caller | None = ADMIN,
                   query: str = "") -> tuple[int, dict[str, Any]]:
        request = manage_pb2.ManageRequest(
            request_id=f"req_{uuid.uuid4().hex[:12]}", method=method, path=path, query=query,
            body=orjson.dumps(body) if body is not None else b"",
        )
        if caller is not None:
            request.caller.CopyFrom(caller)
        reply = await self.stub.Call(request, timeout=15)
        return reply.status, orjson.loads(reply.body)


@pytest.fixture(scope="module")
async def running(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    dsn = await new_database(platform)
    settings: ClientSettings = await fresh_topics(platform.bus.bootstrap)
    producer = EventProducer(settings, client_id="service-test-seed")
    await producer.start()
    try:
        await seed(dsn, producer, load_seed(SEED_FILE, TRITON))
    finally:
        await producer.stop()
    grpc_port = free_port()
    sources = [{"name": "litellm", "format": "litellm", "file": str(FEEDS / "litellm_sample.json")}]
    env = {
        **platform.service_env("catalog"), "TOLLGATE_TOPIC_PREFIX": settings.topic_prefix,
        "CATALOG_DATABASE_URL": dsn, "CATALOG_GRPC_PORT": str(grpc_port), "CATALOG_HTTP_PORT": str(free_port()),
        "CATALOG_SYNC_SOURCES": json.dumps(sources), "CATALOG_SYNC_INTERVAL_SECONDS": "3600",
    }
    process = ServiceProcess("catalog", int(env["CATALOG_HTTP_PORT"]), env, tmp_path_factory.mktemp("catalog-run"))
    process.start()
    seen = CompactedSnapshot(settings, "catalog.v1", CatalogEventV1.from_bytes)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
    try:
        await asyncio.to_thread(process.wait_ready)
        await seen.start()
        await asyncio.wait_for(seen.ready.wait(), 30)
        yield Running(process, manage_pb2_grpc.ManagementServiceStub(channel), seen, dsn, env)
    finally:
        await channel.close()
        await seen.stop()
        await asyncio.to_thread(process.stop)


async def test_a_change_over_grpc_reaches_catalog_v1_within_two_seconds(running: Running) -> None:
    model_id = f"svc-{uuid.uuid4().hex[:8]}"
    status, made = await running.call("PUT", f"/v1/manage/models/{model_id}",
                                      {"display_name": "svc", "context_length": 4096, "max_output_tokens": 512})
    answered = time.monotonic()
    assert status == 201, made
    while (event := running.seen.get(f"model:{model_id}")) is None or event.version < made["version"]:
        assert time.monotonic() - answered < 2.0, "catalog.v1 did not carry the change within 2 s"
        await asyncio.sleep(0.02)
    status, price = await running.call("POST", f"/v1/manage/models/{model_id}/prices", {"input": "0.5", "output": "1"})
    assert status == 201 and price["status"] == "in_force"
    while running.seen.get(f"price:{price['id']}") is None:
        assert time.monotonic() - answered < 4.0
        await asyncio.sleep(0.02)


async def test_the_scheduled_sync_ran_at_start_and_the_api_runs_it_on_demand(running: Running) -> None:
    conn = await asyncpg.connect(running.dsn)
    try:
        deadline = time.monotonic() + 20
        while (row := await conn.fetchrow("SELECT trigger, status FROM sync_runs WHERE trigger = 'schedule'")) is None:
            assert time.monotonic() < deadline, "no scheduled run"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    assert row["status"] == "applied"  # the sample's batch discount of gpt-4o-mini
    status, report = await running.call("POST", "/v1/manage/catalog/sync", {"source": "litellm"})
    assert status == 200 and report["status"] == "unchanged" and report["trigger"] == "api"


async def test_errors_come_back_in_the_openai_shape_and_callers_are_required(running: Running) -> None:
    status, answer = await running.call("POST", "/v1/manage/models/gpt-4o/prices", {"input": 2.5, "output": "10"})
    assert status == 400 and answer["error"]["param"] == "input" and "decimal string" in answer["error"]["message"]
    status, answer = await running.call("GET", "/v1/manage/models", caller=None)
    assert status == 401 and answer["error"]["type"] == "authentication_error"
    reader = manage_pb2.Caller(account_id="acct_x", key_id="key_x")
    status, answer = await running.call("GET", "/v1/manage/models/gpt-4o", caller=reader)
    assert status == 200 and answer["deployments"] is None and answer["price"]["input"] == "2.500000"
    status, doc = await running.call("GET", "/openapi.json", caller=None)
    assert status == 200 and "/v1/manage/models/{id}/prices" in doc["paths"]


def _sync_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.catalog", "sync", *args], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)


async def test_the_sync_command_line_reports_and_applies(running: Running, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.json"
    hostile.write_text('{"gpt-4o": {"input_cost_per_token": -1, "output_cost_per_token": 1e-05}}')
    done = await asyncio.to_thread(_sync_cli, running.env, "--source", "litellm", "--file", str(hostile))
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["status"] == "failed" and report["trigger"] == "cli"
    assert report["errors"] == [{"name": "gpt-4o", "reason": "input_cost_per_token is negative"}]

    cheaper = tmp_path / "cheaper.json"
    cheaper.write_text('{"gpt-4.1": {"input_cost_per_token": 1.8e-06, "output_cost_per_token": 8e-06}}')
    dry = await asyncio.to_thread(_sync_cli, running.env, "--source", "litellm", "--file", str(cheaper), "--dry-run")
    assert dry.returncode == 0 and json.loads(dry.stdout)["status"] == "dry_run"
    done = await asyncio.to_thread(_sync_cli, running.env, "--source", "litellm", "--file", str(cheaper))
    applied = json.loads(done.stdout)["applied"]
    assert done.returncode == 0 and [(a["model_id"], a["price"]["input"]) for a in applied] == [("gpt-4.1", "1.800000")]
    started = time.monotonic()
    while (event := running.seen.get(f"price:{applied[0]['price_id']}")) is None:
        assert time.monotonic() - started < 5, "the CLI did not publish its change"
        await asyncio.sleep(0.05)
    assert event.entity.input_micros_per_mtok == 1_800_000  # type: ignore[union-attr]

    unknown = await asyncio.to_thread(_sync_cli, running.env, "--source", "nowhere")
    assert unknown.returncode != 0 and "unknown source 'nowhere'" in unknown.stderr
    adhoc = await asyncio.to_thread(_sync_cli, running.env, "--source", "openrouter", "--file",
                                    str(FEEDS / "openrouter_sample.json"), "--dry-run")
    assert adhoc.returncode == 0 and json.loads(adhoc.stdout)["source"] == "openrouter"


def test_ops_endpoints_and_a_clean_exit_on_sigterm(running: Running) -> None:
    with urllib.request.urlopen(f"{running.process.base_url}/readyz", timeout=5) as reply:
        assert orjson.loads(reply.read())["checks"] == {"postgres": True, "kafka": True}
    with urllib.request.urlopen(f"{running.process.base_url}/metrics", timeout=5) as reply:
        assert b"tollgate_catalog_events_published_total" in reply.read()
    started = time.monotonic()
    running.process.stop()
    assert running.process.proc.returncode == 0, running.process.proc.log_tail()
    assert time.monotonic() - started < 15
    log = running.process.proc.log_path.read_text()
    assert '"event": "service_stopped"' in log and "Traceback" not in log
