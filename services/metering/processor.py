"""usage.v1 records → usage_raw rows. Pure: no I/O, no clock, so every example payload and every bad
record can be pushed through it in a unit test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from services.common.events.usage import UsageEventV1
from services.common.kafka.batch_consumer import DeadLetter, ProcessResult, Record


def usage_row(event: UsageEventV1) -> dict[str, Any]:
    """The usage_raw row of one event (column names = docs/metering.md)."""
    t = event.tokens
    return {
        "request_id": event.request_id,
        "account_id": event.account_id,
        "key_id": event.key_id,
        "api": event.api,
        "model_requested": event.model_requested,
        "model_served": event.model_served,
        "deployment_id": event.deployment_id or "",
        "provider": event.provider,
        "price_version": event.price_version or "",
        "input_tokens": t.input,
        "cached_input_tokens": t.cached_input,
        "cache_write_tokens": t.cache_write,
        "output_tokens": t.output,
        "reasoning_tokens": t.reasoning,
        "status": event.status,
        "error_type": event.error_type or "",
        "streamed": event.streamed,
        "batch": event.batch,
        "started_at": event.started_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        "ttft_ms": event.ttft_ms,
        "duration_ms": event.duration_ms,
        "edge_id": event.edge_id,
        "attempts": event.attempts,
    }


def process_usage(records: Sequence[Record]) -> ProcessResult[dict[str, Any]]:
    """Valid events become rows; anything else becomes a dead letter with the reason."""
    result: ProcessResult[dict[str, Any]] = ProcessResult()
    for rec in records:
        if rec.value is None:
            result.dead_letters.append(DeadLetter(rec, "empty record"))
            continue
        try:
            event = UsageEventV1.from_bytes(rec.value)
        except ValidationError as exc:
            reason = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            result.dead_letters.append(DeadLetter(rec, f"schema violation: {reason}"))
            continue
        result.rows.append(usage_row(event))
    return result
