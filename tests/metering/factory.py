"""Usage events, prices and records for metering's tests: small, explicit, and priced by the one rule."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from services.common.events.catalog import CatalogEventV1, PriceEntry
from services.common.events.usage import UsageEventV1
from services.common.pricing import TokenCounts, cost_micros

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PRICES = {
    "p_mini": PriceEntry(id="p_mini", model_id="gpt-4o-mini", effective_from=datetime(2026, 1, 1, tzinfo=UTC),
                         input_micros_per_mtok=150_000, cached_input_micros_per_mtok=75_000,
                         cache_write_micros_per_mtok=0, output_micros_per_mtok=600_000),
    "p_sonnet": PriceEntry(id="p_sonnet", model_id="claude-sonnet-4-5",
                           effective_from=datetime(2026, 1, 1, tzinfo=UTC), input_micros_per_mtok=3_000_000,
                           cached_input_micros_per_mtok=300_000, cache_write_micros_per_mtok=3_750_000,
                           output_micros_per_mtok=15_000_000),
}
MODEL_PRICE = {p.model_id: p.id for p in PRICES.values()}
_ids = itertools.count()


def usage(**fields: Any) -> dict[str, Any]:
    """A valid usage.v1 event as a dict; ``fields`` override (``tokens`` merges)."""
    model = fields.pop("model", "gpt-4o-mini")
    tokens = {"input": 120, "cached_input": 0, "cache_write": 0, "output": 30, "reasoning": 0,
              **fields.pop("tokens", {})}
    event: dict[str, Any] = {
        "schema": "usage.v1", "request_id": f"req_{next(_ids):08d}", "account_id": "acct_a", "key_id": "key_a1",
        "api": "openai.chat_completions", "model_requested": model, "model_served": model,
        "deployment_id": "dep_1", "provider": "openai", "price_version": MODEL_PRICE.get(model),
        "tokens": tokens, "status": "ok", "error_type": None, "streamed": True, "batch": False,
        "started_at": T0.isoformat(), "ttft_ms": 200, "duration_ms": 900, "edge_id": "edge-t", "attempts": 1,
    }
    event.update(fields)
    if isinstance(event["started_at"], datetime):
        event["started_at"] = event["started_at"].isoformat()
    return event


def spread(n: int, start: datetime = T0, step: timedelta = timedelta(seconds=7), **fields: Any) -> list[dict[str, Any]]:
    """``n`` events over accounts a/b/c, two keys each, two models, every 17th a failure with no tokens."""
    out = []
    for i in range(n):
        failed = i % 17 == 0
        out.append(usage(
            account_id=f"acct_{'abc'[i % 3]}", key_id=f"key_{'abc'[i % 3]}{i % 2}",
            model="claude-sonnet-4-5" if i % 4 == 0 else "gpt-4o-mini",
            tokens={"input": 0, "output": 0} if failed else {
                "input": 50 + i % 900, "cached_input": (i % 5) * 100, "cache_write": (i % 7) * 3,
                "output": 10 + i % 333, "reasoning": i % 10},
            status="error" if failed else "ok", error_type="upstream_error" if failed else None,
            ttft_ms=None if failed else 100 + i % 50, started_at=start + i * step, **fields,
        ))
    return out


def raw(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def expected_cost(event: dict[str, Any]) -> int:
    """What the bill must say for one event: the one rounding rule, at the event's price version."""
    parsed = UsageEventV1.model_validate(event)
    t = parsed.tokens
    price = PRICES.get(parsed.price_version) if parsed.price_version else None
    return cost_micros(price, TokenCounts(t.input, t.cached_input, t.cache_write, t.output), batch=parsed.batch)


def totals(events: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Expected sums over distinct request ids (the first copy of each)."""
    seen: dict[str, dict[str, Any]] = {}
    for e in events:
        seen.setdefault(e["request_id"], e)
    out = {"requests": 0, "failed_requests": 0, "input_tokens": 0, "cached_input_tokens": 0,
           "cache_write_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0, "cost_micros": 0}
    for e in seen.values():
        t = e["tokens"]
        out["requests"] += 1
        out["failed_requests"] += e["status"] == "error"
        out["input_tokens"] += t.get("input", 0)
        out["cached_input_tokens"] += t.get("cached_input", 0)
        out["cache_write_tokens"] += t.get("cache_write", 0)
        out["output_tokens"] += t.get("output", 0)
        out["reasoning_tokens"] += t.get("reasoning", 0)
        out["cost_micros"] += expected_cost(e)
    return out


def record(value: bytes | None, offset: int = 0, partition: int = 0, topic: str = "usage.v1") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic, partition=partition, offset=offset, timestamp=0, timestamp_type=0, key=b"acct",
        value=value, checksum=None, serialized_key_size=4, serialized_value_size=len(value or b""),
        headers=(),
    )


def catalog_events() -> list[CatalogEventV1]:
    return [CatalogEventV1(version=1, entity=p, updated_at=T0) for p in PRICES.values()]
