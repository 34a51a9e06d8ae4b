"""The cost of one admission: the admit script's round trip to Redis (µs), measured in-process with
the edge's own ``Admission`` against the bench's Redis, for a key that has every limit (RPM, TPM,
concurrency lease, budget), each admission released (settled) as a request would be."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime

import redis.asyncio as redis

from services.common.events.keys import KeyEventV1, Limits
from services.edge.admission.limiter import Admission, OutagePolicy
from services.edge.admission.reservation import Reservation

ALL_LIMITS = Limits(
    requests_per_minute=10**9, tokens_per_minute=10**12, max_concurrency=10**6,
    budget_micros=10**15, budget_window_seconds=86_400,
)


def _key(tag: str) -> KeyEventV1:
    return KeyEventV1(
        key_id=f"key_bench_adm_{tag}", version=1, account_id="acct_bench", plan_id="plan_bench",
        key_hash="0" * 64, prefix="tg-bench", name="bench", status="active", account_status="active",
        limits=ALL_LIMITS, updated_at=datetime.now(UTC),
    )


async def _measure(url: str, tag: str, n: int) -> list[float]:
    client = redis.from_url(url)
    admission = Admission(client, f"bench{tag}", 30, OutagePolicy(), 600)
    key, reservation = _key(tag), Reservation(64, 16, 50)
    samples: list[float] = []
    try:
        for i in range(n + 200):
            started = time.perf_counter()
            ticket = await admission.admit(key, reservation, None)
            elapsed = time.perf_counter() - started
            if i >= 200:  # the first ones load the scripts and warm the connection
                samples.append(elapsed * 1e6)
            admission.release(ticket)
            await admission.drain()
    finally:
        await client.aclose()
    return samples


def admission_cost(url: str, tag: str, n: int = 3000) -> tuple[float, float, int]:
    """(p50 µs, p99 µs, samples)."""
    samples = asyncio.run(_measure(url, tag, n))
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98], len(samples)
