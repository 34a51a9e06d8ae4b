"""The whole usage path on the real servers: edge → usage.v1 (spooled, on Kafka) → metering → chDB →
the usage API through the edge's management front door. What the API reports is what the clients
were served, priced at the catalog's prices, cent for cent."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from infra.stack.platform import Platform
from services.common.api_keys import generate_key
from services.common.events.catalog import PriceEntry
from services.common.kafka.producer import EventProducer
from services.common.money import format_micros
from services.common.pricing import TokenCounts, cost_micros
from tests.e2e.conftest import TRITON_MODEL, Stack, publish_key
from tests.kafka_helpers import ClientSettings

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def metering(platform: Platform) -> Iterator[None]:
    """Metering (the pipeline's end) and billing (the OpenAPI document's base part)."""
    services = [platform.services["metering"], platform.services["billing"]]
    for service in services:
        service.start()
    try:
        for service in services:
            service.wait_ready()
        yield
    finally:
        for service in services:
            service.stop()


def _price(pricing: dict[str, str]) -> PriceEntry:
    """The catalog's price as /v1/models shows it (USD per token) back in micro-USD per 1M tokens."""
    def micros(field: str) -> int:
        return int(Decimal(pricing[field]) * 10**12)

    return PriceEntry(
        id=pricing["price_version"], model_id="m", effective_from=datetime.now(UTC),
        input_micros_per_mtok=micros("prompt"), cached_input_micros_per_mtok=micros("input_cache_read"),
        cache_write_micros_per_mtok=micros("input_cache_write"), output_micros_per_mtok=micros("completion"),
    )


def _tokens(usage: dict[str, Any]) -> TokenCounts:
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return TokenCounts(input=usage["prompt_tokens"] - cached, cached_input=cached, output=usage["completion_tokens"])


async def test_usage_api_reports_what_was_served_cent_for_cent(stack: Stack, metering: None) -> None:
    platform = stack.platform
    account = f"acct_pipe_{uuid.uuid4().hex[:8]}"
    secret = generate_key()
    producer = EventProducer(ClientSettings(kafka_bootstrap=platform.bus.bootstrap,
                                            topic_prefix=platform.config.topic_prefix), client_id="e2e-pipeline")
    await producer.start()
    await publish_key(producer, platform, f"key_pipe_{uuid.uuid4().hex[:8]}", secret, account_id=account)
    await producer.stop()
    started = datetime.now(UTC)

    auth = {"authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=stack.base_url, headers=auth, timeout=60) as client:
        while (await client.get("/models")).status_code != 200:
            await asyncio.sleep(0.05)
        listed = (await client.get("/models")).json()["data"]
        # models other tests published on the shared broker may have no price: only these two matter
        prices = {m["id"]: _price(m["pricing"]) for m in listed if m["pricing"] is not None}
        expected_cost, tokens, served = 0, TokenCounts(), 0
        for _ in range(4):
            reply = await client.post("/chat/completions", json={"model": stack.model("oa-ok"), "messages": HI})
            assert reply.status_code == 200
            used = _tokens(reply.json()["usage"])
            expected_cost += cost_micros(prices[stack.model("oa-ok")], used)
            tokens = TokenCounts(tokens.input + used.input, tokens.cached_input + used.cached_input, 0,
                                 tokens.output + used.output)
            served += 1
        for _ in range(2):
            reply = await client.post("/chat/completions", json={
                "model": TRITON_MODEL, "messages": HI, "max_tokens": 4, "stream": True,
                "stream_options": {"include_usage": True},
            })
            assert reply.status_code == 200
            chunks = [line for line in reply.text.splitlines() if line.startswith("data: {")]
            usage = httpx.Response(200, content=chunks[-1][6:]).json()["usage"]
            used = _tokens(usage)
            expected_cost += cost_micros(prices[TRITON_MODEL], used)
            tokens = TokenCounts(tokens.input + used.input, tokens.cached_input + used.cached_input, 0,
                                 tokens.output + used.output)
            served += 1
        failed = await client.post("/chat/completions", json={"model": stack.model("oa-server-error"), "messages": HI})
        assert failed.status_code == 502

    window = {"account_id": account, "from": (started - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:00Z"),
              "to": (started + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:00Z")}
    admin = {"authorization": f"Bearer {platform.admin_key}"}
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=stack.base_url.removesuffix("/v1"), headers=admin, timeout=30) as client:
        while True:
            reply = await client.get("/v1/manage/usage", params=window)
            assert reply.status_code == 200, reply.text
            totals = reply.json()["totals"]
            if totals["requests"] >= served + 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert totals["requests"] == served + 1 and totals["failed_requests"] == 1
        assert (totals["input_tokens"], totals["cached_input_tokens"], totals["output_tokens"]) == (
            tokens.input, tokens.cached_input, tokens.output)
        assert totals["cost"] == format_micros(expected_cost)

        by_model = await client.get("/v1/manage/usage", params={**window, "breakdown": "model", "group_by": "day"})
        assert by_model.status_code == 200, by_model.text
        rows = [row for bucket in by_model.json()["data"] for row in bucket["results"]]
        assert {row["model"] for row in rows} >= {stack.model("oa-ok"), TRITON_MODEL}
        assert sum(row["requests"] for row in rows) == served + 1

        doc = (await client.get("/openapi.json")).json()
        assert "/v1/manage/usage" in doc["paths"]  # metering's part merged into the public document
