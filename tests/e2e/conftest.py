"""End-to-end fixtures: router + edge processes on the session platform, a real API key published on
keys.v1 (as billing does), and catalog models pointing at the replaying upstream and at Triton."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from infra.stack.platform import Platform
from services.common.api_keys import display_prefix, generate_key, hash_key
from services.common.events.catalog import CatalogEventV1, DeploymentEntry, ModelEntry, PriceEntry
from services.common.events.keys import KeyEventV1
from services.common.events.usage import UsageEventV1
from services.common.kafka.producer import EventProducer
from tests.kafka_helpers import ClientSettings, read_all
from tests.upstream.harness import UpstreamServer, upstream  # noqa: F401 - session fixture

KEY_EXAMPLE = Path(__file__).resolve().parents[2] / "services/common/events/examples/keys.v1/active_key.json"
TRITON_MODEL = "smollm2-135m-instruct"  # the catalog's self-hosted model (tiny random Llama in tests)


@dataclass
class Stack:
    platform: Platform
    base_url: str
    key: str
    upstream: UpstreamServer
    tag: str

    def model(self, name: str) -> str:
        return f"{name}-{self.tag}"


def now() -> datetime:
    return datetime.now(UTC)


async def publish_key(producer: EventProducer, platform: Platform, key_id: str, secret: str, **changes: object) -> None:
    base = KeyEventV1.from_bytes(KEY_EXAMPLE.read_bytes())
    event = base.model_copy(update={
        "key_id": key_id, "key_hash": hash_key(secret, platform.key_hash_secret),
        "prefix": display_prefix(secret), "limits": base.limits.model_copy(update={"allowed_models": None}),
        "updated_at": now(), **changes,
    })
    await producer.publish("keys.v1", key_id, event)


async def publish_provider_model(
    producer: EventProducer, name: str, backend: str, base_url: str, scenario: str,
    features: tuple[str, ...] | None = None, **model_fields: object,
) -> None:
    model_fields.setdefault("created_at", now())
    model_fields.setdefault("max_output_tokens", 1024)
    entities = [
        ModelEntry(id=name, display_name=name, context_length=8192, **model_fields),  # type: ignore[arg-type]
        DeploymentEntry(id=f"{name}-dep", model_id=name, backend=backend,  # type: ignore[arg-type]
                        endpoint=base_url, upstream_model=f"{scenario}:{name}", features=features),
        PriceEntry(id=f"{name}-price", model_id=name, effective_from=now() - timedelta(days=1),
                   input_micros_per_mtok=150_000, cached_input_micros_per_mtok=75_000,
                   cache_write_micros_per_mtok=0, output_micros_per_mtok=600_000),
    ]
    for entity in entities:
        event = CatalogEventV1(version=1, entity=entity, updated_at=now())
        await producer.publish("catalog.v1", event.record_key, event)


async def all_usage_events(stack: Stack) -> list[UsageEventV1]:
    platform = stack.platform
    records = await read_all(platform.bus.bootstrap, platform.config.topic_prefix + "usage.v1")
    return [UsageEventV1.from_bytes(value) for _, value in records if value]


async def usage_events(stack: Stack, request_ids: set[str], timeout: float = 30.0) -> dict[str, list[UsageEventV1]]:
    """Every usage.v1 event of these requests (waits until each has at least one)."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, list[UsageEventV1]] = {}
        for event in await all_usage_events(stack):
            if event.request_id in request_ids:
                found.setdefault(event.request_id, []).append(event)
        if set(found) == request_ids or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def read_then_leave(stream: openai.AsyncStream[Any], chunks: int) -> None:
    """Read ``chunks`` chunks of a stream, then close it: a client that leaves mid-answer."""
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == chunks:
            break
    await stream.close()


async def upstream_disconnects(stack: Stack, upstream_model: str, count: int, timeout: float = 5.0) -> dict[str, int]:
    """The upstream's counts for one model once it has seen ``count`` disconnects (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while (stats := stack.upstream.model_stats(upstream_model))["disconnects"] < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return stats


@pytest.fixture
async def oa(stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official OpenAI SDK on this stack's key, without retries (a test sees each answer)."""
    async with openai.AsyncOpenAI(base_url=stack.base_url, api_key=stack.key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def claude(stack: Stack) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The official Anthropic SDK on this stack's key (its base URL without ``/v1``), without retries."""
    async with anthropic.AsyncAnthropic(base_url=stack.base_url.removesuffix("/v1"), api_key=stack.key,
                                        max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def services(platform: Platform) -> Iterator[Platform]:
    for name in ("router", "edge"):
        platform.services[name].start()
    for name in ("router", "edge"):
        platform.services[name].wait_ready()
    yield platform
    for name in ("edge", "router"):
        platform.services[name].stop()


@pytest.fixture(scope="module")
async def stack(services: Platform, upstream: UpstreamServer) -> AsyncIterator[Stack]:  # noqa: F811
    settings = ClientSettings(kafka_bootstrap=services.bus.bootstrap, topic_prefix=services.config.topic_prefix)
    producer = EventProducer(settings, client_id="e2e")
    await producer.start()
    tag = uuid.uuid4().hex[:6]
    secret = generate_key()
    await publish_key(producer, services, f"key_e2e_{tag}", secret)
    scenarios = [
        "ok", "ok-no-usage", "cut-mid-stream", "slow-stream", "server-error", "context-too-long", "rate-limited",
        "tool-calls", "slow", "reasoning-text", "logprobs",
    ]
    for scenario in scenarios:
        await publish_provider_model(producer, f"oa-{scenario}-{tag}", "openai", upstream.openai_base_url, scenario)
    await publish_provider_model(  # a vLLM-like server asked for usage on every chunk
        producer, f"oa-continuous-usage-slow-{tag}", "openai", upstream.openai_base_url, "continuous-usage-slow",
        features=("continuous_usage",),
    )
    for prefix, backend, base_url, features in (("oa", "openai", upstream.openai_base_url, ("image_urls",)),
                                                ("an", "anthropic", upstream.anthropic_base_url, None)):
        await publish_provider_model(  # a model that takes images, at each kind of provider
            producer, f"{prefix}-vision-{tag}", backend, base_url, "ok", input_modalities=("text", "image"),
            features=features,
        )
    await publish_provider_model(  # a self-hosted server that takes images, not told to fetch URLs
        producer, f"oa-vision-inline-{tag}", "openai", upstream.openai_base_url, "ok",
        input_modalities=("text", "image"),
    )
    await publish_provider_model(  # a vLLM server whose /tokenize counts tokens
        producer, f"oa-tokenize-{tag}", "openai", upstream.openai_base_url, "ok", features=("tokenize",),
    )
    for feature in ("tokenize", "input_tokens"):  # slow streams from servers that can count a cut prompt
        await publish_provider_model(producer, f"oa-slow-stream-{feature}-{tag}", "openai", upstream.openai_base_url,
                                     "slow-stream", features=(feature,))
    for scenario in ["ok", "two", "floats", "slow"]:  # embedding models (the upstream's /v1/embeddings answers)
        await publish_provider_model(producer, f"oa-embed-{scenario}-{tag}", "openai", upstream.openai_base_url,
                                     scenario, capabilities=("embeddings",), max_output_tokens=1)
    for scenario in ["ok", "overloaded", "tool-use", "stop-sequence", "rate-limited", "slow-stream", "structured"]:
        await publish_provider_model(producer, f"an-{scenario}-{tag}", "anthropic", upstream.anthropic_base_url, scenario)
    await publish_provider_model(  # room for a thinking budget (at least 1,024) and an answer after it
        producer, f"an-thinking-{tag}", "anthropic", upstream.anthropic_base_url, "thinking", max_output_tokens=4096,
    )
    await publish_provider_model(
        producer, f"old-{tag}", "openai", upstream.openai_base_url, "ok",
        deprecated_at=now() - timedelta(days=30), sunset_at=now() + timedelta(days=30), replacement=f"oa-ok-{tag}",
    )
    await publish_provider_model(
        producer, f"gone-{tag}", "openai", upstream.openai_base_url, "ok",
        deprecated_at=now() - timedelta(days=60), sunset_at=now() - timedelta(days=1), replacement=f"oa-ok-{tag}",
    )
    await producer.stop()
    base = f"http://127.0.0.1:{services.config.ports.edge}"
    wanted = {f"oa-ok-{tag}", f"an-ok-{tag}", f"old-{tag}", TRITON_MODEL}  # a sunset model is not listed
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient() as client:
        while True:  # wait until the edge's snapshots have the key and the models
            reply = await client.get(f"{base}/v1/models", headers={"authorization": f"Bearer {secret}"})
            if reply.status_code == 200 and wanted <= {m["id"] for m in reply.json()["data"]}:
                break
            assert time.monotonic() < deadline, reply.text
            await asyncio.sleep(0.1)
        while (await client.get(f"{base}/v1/models/gone-{tag}", headers={"authorization": f"Bearer {secret}"})
               ).status_code != 410:  # the retired model, known by name
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        while True:  # and the router's: the edge lists a model before the router may route it
            reply = await client.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {secret}"},
                                      json={"model": f"oa-ok-{tag}", "messages": [{"role": "user", "content": "hi"}]})
            if reply.status_code == 200:
                break
            assert time.monotonic() < deadline, reply.text
            await asyncio.sleep(0.1)
    yield Stack(services, f"{base}/v1", secret, upstream, tag)
