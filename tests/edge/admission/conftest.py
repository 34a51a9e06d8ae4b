"""Admission against the session's real Redis, with a key prefix of its own per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from infra.stack.platform import Platform
from services.common.events.catalog import PriceEntry
from services.common.events.keys import KeyEventV1, Limits
from services.edge.admission.limiter import Admission, OutagePolicy

# realistic list prices (gpt-4o): $2.50 / 1M input, $1.25 cached, $10.00 output
PRICE = PriceEntry(
    id="price-test", model_id="m", effective_from=datetime.now(UTC) - timedelta(days=1),
    input_micros_per_mtok=2_500_000, cached_input_micros_per_mtok=1_250_000,
    cache_write_micros_per_mtok=0, output_micros_per_mtok=10_000_000,
)


def key_with(**limits: object) -> KeyEventV1:
    return KeyEventV1(
        key_id=f"key_{uuid.uuid4().hex[:10]}", version=1, account_id="acct_t", plan_id="plan_t",
        key_hash="0" * 64, prefix="tg-test", name="t", status="active", account_status="active",
        limits=Limits(**limits),  # type: ignore[arg-type]
        updated_at=datetime.now(UTC),
    )


@pytest.fixture
async def redis_client(platform: Platform) -> AsyncIterator[redis.Redis]:
    client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        platform.redis.url, max_connections=32, timeout=5))
    yield client
    await client.aclose(close_connection_pool=True)


@pytest.fixture
def prefix() -> str:
    return f"tgtest{uuid.uuid4().hex[:8]}"


@pytest.fixture
def admission(redis_client: redis.Redis, prefix: str) -> Admission:
    return Admission(redis_client, prefix, lease_ttl_seconds=30, policy=OutagePolicy(), max_request_seconds=600)
