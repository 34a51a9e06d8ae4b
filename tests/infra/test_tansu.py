"""Smoke run of the opt-in light bus (Tansu): topics, produce, consume with a group, via our helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from infra.stack.ports import free_port
from infra.stack.tansu import TansuServer
from infra.stack.topics import ensure_topics
from services.common.kafka.batch_consumer import BatchBounds, BatchConsumer
from services.common.kafka.producer import EventProducer
from tests.kafka_helpers import ClientSettings, usage_request_ids

USAGE = Path(__file__).resolve().parents[2] / "services/common/events/examples/usage.v1/ok_stream.json"


class Rows:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    async def write(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows.extend(rows)


async def test_platform_helpers_work_on_tansu(run_dir: Path) -> None:
    server = TansuServer(run_dir / "tansu-smoke", free_port())
    await asyncio.to_thread(server.start)
    try:
        await asyncio.to_thread(server.wait_ready)
        await ensure_topics(server.bootstrap, prefix="smoke.")
        settings = ClientSettings(kafka_bootstrap=server.bootstrap, topic_prefix="smoke.", bus="tansu")
        producer = EventProducer(settings, client_id="smoke")
        await producer.start()
        base = orjson.loads(USAGE.read_bytes())
        for i in range(10):
            await producer.publish_raw(settings.topic("usage.v1"), b"acct", orjson.dumps({**base, "request_id": f"r{i}"}))
        await producer.stop()

        writer = Rows()
        consumer = BatchConsumer(
            settings=settings, topics=["usage.v1"], group_id="smoke", processor=usage_request_ids, writer=writer,
            bounds=BatchBounds(max_records=100, max_wait_seconds=0.3),
        )
        await consumer.start()
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(writer.rows) < 10 and loop.time() < deadline:
            await asyncio.sleep(0.1)
        stop.set()
        await task
        await consumer.stop()
        assert sorted(r["request_id"] for r in writer.rows) == [f"r{i}" for i in range(10)]
    finally:
        await asyncio.to_thread(server.stop)
