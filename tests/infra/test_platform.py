"""The five services as real processes on the real servers: ready, serving, and stopping cleanly."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import orjson
import pytest

from infra.stack.platform import Platform
from infra.stack.services import SERVICES
from services.common.kafka.producer import EventProducer
from services.metering.service import GROUP_ID
from services.metering.store.chdb_store import ChdbStore
from tests.kafka_helpers import ClientSettings, committed_offsets
from tollgate.router.v1 import router_pb2, router_pb2_grpc

USAGE = Path(__file__).resolve().parents[2] / "services/common/events/examples/usage.v1/ok_stream.json"


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture(scope="module")
def running(platform: Platform) -> Iterator[Platform]:
    platform.start_services()
    yield platform
    for name in reversed(SERVICES):
        platform.services[name].stop()


@pytest.mark.parametrize("name", SERVICES)
def test_service_reports_ready_only_with_all_its_dependencies(running: Platform, name: str) -> None:
    base = running.services[name].base_url
    status, _, body = get(f"{base}/readyz")
    report = orjson.loads(body)
    assert status == 200, report
    assert report["status"] == "ready" and all(report["checks"].values()) and report["checks"]
    assert get(f"{base}/healthz")[0] == 200
    status, _, metrics = get(f"{base}/metrics")
    assert status == 200 and b"process_cpu_seconds_total" in metrics


def test_edge_puts_a_request_id_on_every_response(running: Platform) -> None:
    base = running.services["edge"].base_url
    ids = {get(f"{base}/healthz")[1]["x-request-id"] for _ in range(3)}
    ids.add(get(f"{base}/no-such-path")[1]["x-request-id"])
    assert len(ids) == 4 and all(i.startswith("req_") for i in ids)


async def test_router_streams_a_generation_from_triton(running: Platform) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.config.ports.router_grpc}") as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        request = router_pb2.GenerateRequest(
            # the catalog's self-hosted model; in tests its Triton runs the tiny random Llama
            request_id="req_router_test", account_id="acct", model="smollm2-135m-instruct",
            chat=router_pb2.ChatInput(messages=[router_pb2.ChatMessage(role="user", content="Hi")]),
            sampling=router_pb2.SamplingParams(max_tokens=8, temperature=0.0),
        )
        replies = [r async for r in stub.Generate(request, timeout=60)]
    deltas = [r.delta.text for r in replies if r.WhichOneof("event") == "delta"]
    finish = replies[-1].finish
    assert replies[-1].WhichOneof("event") == "finish"
    assert deltas and "".join(deltas)
    assert 0 < finish.usage.output_tokens <= 8
    assert finish.usage.input_tokens > 5  # the ChatML-wrapped prompt, counted by the backend tokenizer
    assert (finish.deployment_id, finish.provider, finish.attempts) == ("smollm2-triton-cpu", "triton", 1)


async def test_router_refuses_bad_input_before_generating(running: Platform) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.config.ports.router_grpc}") as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        bad = router_pb2.GenerateRequest(
            request_id="req_bad", model="smollm2-135m-instruct", prompt="x",
            sampling=router_pb2.SamplingParams(max_tokens=0),
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            _ = [r async for r in stub.Generate(bad, timeout=30)]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_metering_writes_usage_and_commits_before_a_clean_sigterm_exit(running: Platform) -> None:
    settings = ClientSettings(kafka_bootstrap=running.bus.bootstrap, topic_prefix=running.config.topic_prefix)
    producer = EventProducer(settings, client_id="edge-test")
    await producer.start()
    base = orjson.loads(USAGE.read_bytes())
    ids = [f"req_svc_{i}" for i in range(25)]
    try:
        for rid in ids:
            await producer.publish_raw(settings.topic("usage.v1"), b"acct_acme", orjson.dumps({**base, "request_id": rid}))
    finally:
        await producer.stop()
    group = settings.topic(GROUP_ID)
    deadline = time.monotonic() + 30
    while sum((await committed_offsets(running.bus.bootstrap, group)).values()) < len(ids):
        assert time.monotonic() < deadline, "metering did not commit the batch"
        await asyncio.sleep(0.2)
    metering = running.services["metering"]
    await asyncio.to_thread(metering.stop)
    assert metering.proc.returncode == 0
    store = ChdbStore(str(running.config.run_dir / "chdb"))  # chDB: one process per dir, now ours
    try:
        rows = await store.query("SELECT request_id FROM usage_raw FINAL WHERE request_id LIKE 'req_svc_%'")
    finally:
        await store.close()
    assert sorted(r["request_id"] for r in rows) == sorted(ids)


@pytest.mark.parametrize("name", [s for s in reversed(SERVICES) if s != "metering"])
def test_service_stops_cleanly_on_sigterm(running: Platform, name: str) -> None:
    service = running.services[name]
    started = time.monotonic()
    service.stop(timeout=20)
    assert service.proc.returncode == 0, service.proc.log_tail()
    assert time.monotonic() - started < 15
    log = (running.config.run_dir / "logs" / f"{name}.log").read_text()
    assert '"event": "service_stopped"' in log
    assert "Traceback" not in log
