"""The pipelined consumer (``pipeline=True``, metering's): batch n+1 is processed while batch n is
written, and still offsets move only after a write succeeded, in order, and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from services.common.kafka.batch_consumer import BatchBounds, BatchConsumer, ProcessResult, Record
from tests.common.kafka.test_batch_consumer import (
    FlakyWriter,
    _committed_total,
    _true,
    produce,
    usage_payload,
)
from tests.conftest import unique
from tests.kafka_helpers import committed_offsets, eventually, fresh_topics, usage_request_ids


class SlowWriter(FlakyWriter):
    """Writes take a while (so the next batch is processed meanwhile); fails its first ``failures``."""

    def __init__(self, failures: int, delay: float = 0.05) -> None:
        super().__init__(failures)
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0

    async def write(self, rows: Sequence[dict[str, Any]]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            await super().write(rows)
        finally:
            self.in_flight -= 1


def pipelined(settings: Any, group: str, writer: FlakyWriter, processor: Any = usage_request_ids) -> BatchConsumer[dict[str, Any]]:
    return BatchConsumer(
        settings=settings, topics=["usage.v1"], group_id=group, processor=processor, writer=writer,
        bounds=BatchBounds(max_records=7, max_wait_seconds=0.1, retry_backoff_seconds=0.2), pipeline=True,
    )


async def run_until(consumer: BatchConsumer[dict[str, Any]], done: Any) -> None:
    await consumer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(done, timeout=30)
    finally:
        stop.set()
        await task
        await consumer.stop()


async def test_a_failed_write_redelivers_it_and_the_batch_behind_it_exactly_once(bootstrap: str) -> None:
    settings = await fresh_topics(bootstrap)
    await produce(settings, [usage_payload(i) for i in range(60)])
    group = unique("g")
    writer = SlowWriter(failures=2)
    await run_until(pipelined(settings, group, writer),
                    lambda: _committed_total(bootstrap, settings.topic(group), 60))
    ids = [r["request_id"] for r in writer.rows]
    assert sorted(ids) == [f"req_{i:04d}" for i in range(60)]  # each once: nothing lost, nothing doubled
    assert writer.most_in_flight == 1  # one write at a time: commits stay in order


async def test_stopping_finishes_the_write_in_flight_and_commits_it(bootstrap: str) -> None:
    settings = await fresh_topics(bootstrap)
    await produce(settings, [usage_payload(i) for i in range(40)])
    group = unique("g")
    writer = SlowWriter(failures=0, delay=0.3)
    await run_until(pipelined(settings, group, writer), lambda: _true(len(writer.rows) >= 7))
    committed = sum((await committed_offsets(bootstrap, settings.topic(group))).values())
    assert committed == len(writer.rows)  # everything written was committed, nothing else


async def test_a_processor_failure_rewinds_its_batch_after_the_write_in_flight_is_committed(bootstrap: str) -> None:
    settings = await fresh_topics(bootstrap)
    await produce(settings, [usage_payload(i) for i in range(30)])
    group = unique("g")
    failures = {"left": 1}

    def flaky(records: Sequence[Record]) -> ProcessResult[dict[str, Any]]:
        if failures["left"] and any(r.offset >= 5 for r in records):
            failures["left"] -= 1
            raise RuntimeError("the price list is not there yet")
        return usage_request_ids(records)

    writer = SlowWriter(failures=0)
    await run_until(pipelined(settings, group, writer, flaky),
                    lambda: _committed_total(bootstrap, settings.topic(group), 30))
    assert sorted(r["request_id"] for r in writer.rows) == [f"req_{i:04d}" for i in range(30)]
    assert failures["left"] == 0
