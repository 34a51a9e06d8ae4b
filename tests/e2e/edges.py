"""Three edge processes on one Redis and one keys.v1 topic, for the tests that must show a limit or a
change holding on every edge, not just on one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from infra.stack.platform import Platform
from infra.stack.ports import free_port
from infra.stack.services import ServiceProcess
from services.common.api_keys import generate_key
from services.common.events.catalog import CatalogEventV1, DeploymentEntry, ModelEntry, PriceEntry
from services.common.events.keys import Limits
from services.common.kafka.producer import EventProducer
from tests.e2e.conftest import Stack, now, publish_key
from tests.kafka_helpers import ClientSettings

# gpt-4o's list prices: $2.50 / 1M input, $1.25 cached, $10.00 output
PRICE_FIELDS = {"input_micros_per_mtok": 2_500_000, "cached_input_micros_per_mtok": 1_250_000,
                "cache_write_micros_per_mtok": 0, "output_micros_per_mtok": 10_000_000}
HI = [{"role": "user", "content": "hi"}]  # reserves 16 + 8 + 2 = 26 input tokens (the bound)


@dataclass
class Edges:
    urls: list[str]
    stack: Stack
    producer: EventProducer
    tag: str
    secrets: list[str]

    def url(self, i: int) -> str:
        return self.urls[i % len(self.urls)]

    def model(self, scenario: str) -> str:
        return f"adm-{scenario}-{self.tag}"

    async def new_key(self, **limits: object) -> tuple[str, str]:
        key_id, secret = f"key_adm_{uuid.uuid4().hex[:10]}", generate_key()
        self.secrets.append(secret)
        await publish_key(self.producer, self.stack.platform, key_id, secret,
                          limits=Limits(**limits))  # type: ignore[arg-type]
        await self.wait_known(secret)
        return key_id, secret

    async def wait_known(self, secret: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            for url in self.urls:
                while (await client.get(f"{url}/v1/models", headers=auth(secret))).status_code != 200:
                    assert time.monotonic() < deadline, f"{url} never learned the key"
                    await asyncio.sleep(0.05)


def auth(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def _publish_model(producer: EventProducer, name: str, base_url: str, scenario: str) -> None:
    for entity in (
        ModelEntry(id=name, display_name=name, context_length=128_000, max_output_tokens=4096),
        DeploymentEntry(id=f"{name}-dep", model_id=name, backend="openai", endpoint=base_url,
                        upstream_model=f"{scenario}:{name}"),
        PriceEntry(id=f"{name}-price", model_id=name, effective_from=now() - timedelta(days=1), **PRICE_FIELDS),
    ):
        event = CatalogEventV1(version=1, entity=entity, updated_at=now())
        await producer.publish("catalog.v1", event.record_key, event)


@pytest.fixture(scope="module", name="more_edges")
def more_edges_fixture(stack: Stack) -> Iterator[list[ServiceProcess]]:
    platform = stack.platform
    extra = []
    for n in (2, 3):
        env = {**platform.service_env("edge"), "TOLLGATE_PORT": str(free_port()), "EDGE_INSTANCE_ID": f"edge-{n}"}
        extra.append(ServiceProcess("edge", int(env["TOLLGATE_PORT"]), env, platform.config.run_dir / f"edge-{n}"))
    for proc in extra:
        proc.start()
    try:
        for proc in extra:
            proc.wait_ready()
        yield extra
    finally:
        for proc in extra:
            proc.stop()


@pytest.fixture(scope="module", name="billing")
def billing_fixture(platform: Platform) -> Iterator[None]:
    """The billing service process, for the tests that go through the management API or its ledger."""
    service = platform.services["billing"]
    service.start()
    try:
        service.wait_ready()
        yield
    finally:
        service.stop()


@pytest.fixture(scope="module", name="edges")
async def edges_fixture(stack: Stack, more_edges: list[ServiceProcess]) -> AsyncIterator[Edges]:
    platform = stack.platform
    settings = ClientSettings(kafka_bootstrap=platform.bus.bootstrap, topic_prefix=platform.config.topic_prefix)
    producer = EventProducer(settings, client_id="e2e-admission")
    await producer.start()
    tag = uuid.uuid4().hex[:6]
    urls = [stack.base_url.removesuffix("/v1"), *(p.base_url for p in more_edges)]
    result = Edges(urls, stack, producer, tag, [stack.key])
    # "concurrency" is the slow scenario under a name of its own, so its upstream counters are its own
    for name, scenario in (("ok", "ok"), ("slow", "slow"), ("concurrency", "slow"), ("slow-stream", "slow-stream")):
        await _publish_model(producer, result.model(name), stack.upstream.openai_base_url, scenario)
    _, secret = await result.new_key()
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient() as client:
        for url in urls:
            while result.model("slow-stream") not in {
                m["id"] for m in (await client.get(f"{url}/v1/models", headers=auth(secret))).json()["data"]
            }:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
    yield result
    await producer.stop()




def redis_prefix(platform: Platform) -> str:
    return platform.service_env("edge")["EDGE_REDIS_PREFIX"]
