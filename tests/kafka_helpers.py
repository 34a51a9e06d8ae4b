"""Small helpers for tests that talk to the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from infra.stack.topics import ensure_topics
from services.common.events.usage import UsageEventV1
from services.common.kafka.batch_consumer import DeadLetter, ProcessResult, Record
from services.common.settings import ServiceSettings


class ClientSettings(ServiceSettings):
    http_port: int = 0


async def fresh_topics(bootstrap: str) -> ClientSettings:
    """All declared topics under a prefix no other test uses, and settings that point at them."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    await ensure_topics(bootstrap, prefix=prefix)
    return ClientSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix)


def usage_request_ids(records: Sequence[Record]) -> ProcessResult[dict[str, Any]]:
    """A minimal pure processor for tests of the consumer pattern itself (not of metering's): a valid
    usage.v1 record becomes ``{"request_id": ...}``, anything else a dead letter with the reason."""
    result: ProcessResult[dict[str, Any]] = ProcessResult()
    for rec in records:
        try:
            event = UsageEventV1.from_bytes(rec.value or b"")
        except ValidationError as exc:
            where = "; ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
            result.dead_letters.append(DeadLetter(rec, f"schema violation: {where}"))
            continue
        result.rows.append({"request_id": event.request_id})
    return result


async def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def read_all(bootstrap: str, topic: str, timeout: float = 10.0) -> list[tuple[bytes | None, bytes | None]]:
    """Every record currently in ``topic``, from the beginning (no consumer group)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        await eventually(lambda: _assigned(consumer), what=f"partitions of {topic} assigned")
        tps = list(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes | None]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend((r.key, r.value) for r in records)
        return out
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not true after {timeout}s: {what}")


async def _assigned(consumer: AIOKafkaConsumer) -> bool:
    return bool(consumer.assignment())
