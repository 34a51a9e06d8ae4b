"""The consumer pattern on the real broker: offsets move only after the writer succeeded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from services.common.kafka.batch_consumer import BatchBounds, BatchConsumer
from services.common.kafka.producer import EventProducer
from tests.conftest import unique
from tests.kafka_helpers import committed_offsets, eventually, fresh_topics, read_all, usage_request_ids

EXAMPLE = Path(__file__).resolve().parents[3] / "services/common/events/examples/usage.v1/ok_stream.json"


def usage_payload(i: int) -> bytes:
    data = orjson.loads(EXAMPLE.read_bytes())
    data["request_id"] = f"req_{i:04d}"
    data["account_id"] = f"acct_{i % 3}"
    return orjson.dumps(data)


class FlakyWriter:
    """Fails its first ``failures`` calls, then records what it is given."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.rows: list[dict[str, Any]] = []

    async def write(self, rows: Sequence[dict[str, Any]]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("store unavailable")
        self.rows.extend(rows)


async def produce(settings: Any, payloads: list[bytes]) -> None:
    producer = EventProducer(settings, client_id="test")
    await producer.start()
    try:
        for i, payload in enumerate(payloads):
            await producer.publish_raw(settings.topic("usage.v1"), f"acct_{i % 3}".encode(), payload)
    finally:
        await producer.stop()


def consumer_for(settings: Any, group: str, writer: FlakyWriter, producer: EventProducer | None = None) -> BatchConsumer[dict[str, Any]]:
    return BatchConsumer(
        settings=settings, topics=["usage.v1"], group_id=group, processor=usage_request_ids, writer=writer,
        dead_letter_topic="usage.v1.dlq" if producer else None, producer=producer,
        bounds=BatchBounds(max_records=1000, max_wait_seconds=0.3, retry_backoff_seconds=0.2),
    )


async def test_failed_write_commits_nothing_and_the_batch_is_redelivered(bootstrap: str) -> None:
    settings = await fresh_topics(bootstrap)
    await produce(settings, [usage_payload(i) for i in range(20)])
    group = unique("g")
    writer = FlakyWriter(failures=3)
    consumer = consumer_for(settings, group, writer)
    await consumer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(lambda: _true(writer.calls >= 2), what="writer called twice")
        assert writer.rows == []
        assert await committed_offsets(bootstrap, settings.topic(group)) == {}
        await eventually(lambda: _true(len(writer.rows) >= 20), what="all rows written after recovery")
        await eventually(lambda: _committed_total(bootstrap, settings.topic(group), 20), what="offsets committed")
    finally:
        stop.set()
        await task
        await consumer.stop()
    assert sorted(r["request_id"] for r in writer.rows) == [f"req_{i:04d}" for i in range(20)]


async def test_consumer_stopped_while_writes_fail_leaves_everything_for_the_next_one(bootstrap: str) -> None:
    settings = await fresh_topics(bootstrap)
    await produce(settings, [usage_payload(i) for i in range(7)])
    group = unique("g")
    broken = FlakyWriter(failures=10**6)
    first = consumer_for(settings, group, broken)
    await first.start()
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    await eventually(lambda: _true(broken.calls >= 2), what="failing writer retried")
    stop.set()
    await task
    await first.stop()
    assert await committed_offsets(bootstrap, settings.topic(group)) == {}

    healthy = FlakyWriter(failures=0)
    second = consumer_for(settings, group, healthy)
    await second.start()
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(second.run(stop2))
    try:
        await eventually(lambda: _true(len(healthy.rows) >= 7), what="second consumer got every record")
    finally:
        stop2.set()
        await task2
        await second.stop()
    assert len({r["request_id"] for r in healthy.rows}) == 7


async def test_bad_records_go_to_the_dead_letter_topic_with_a_reason(bootstrap: str) -> None:
    settings = await fresh_topics(bootstrap)
    bad = orjson.loads(usage_payload(1))
    bad["tokens"]["output"] = -5
    await produce(settings, [usage_payload(0), orjson.dumps(bad), b"not json", usage_payload(2)])
    producer = EventProducer(settings, client_id="dlq")
    await producer.start()
    writer = FlakyWriter(failures=0)
    consumer = consumer_for(settings, unique("g"), writer, producer)
    await consumer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(lambda: _true(len(writer.rows) >= 2 and consumer.committed_batches >= 1))
    finally:
        stop.set()
        await task
        await consumer.stop()
        await producer.stop()
    dead = [orjson.loads(v or b"{}") for _, v in await read_all(bootstrap, settings.topic("usage.v1.dlq"))]
    assert len(dead) == 2
    reasons = sorted(d["reason"] for d in dead)
    assert any("tokens.output" in r for r in reasons)
    assert any("schema violation" in r for r in reasons)
    assert {d["topic"] for d in dead} == {settings.topic("usage.v1")}


async def _true(value: bool) -> bool:
    return value


async def _committed_total(bootstrap: str, group: str, expected: int) -> bool:
    return sum((await committed_offsets(bootstrap, group)).values()) == expected
