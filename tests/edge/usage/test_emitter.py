"""The usage emitter on the real broker and a real spool: every event reaches usage.v1 once and in
order, from memory when it was just appended and from disk when an earlier run left it there, and a
spool that cannot be written stops admissions without losing what was emitted."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from services.common.events.usage import UsageEventV1
from services.common.kafka.producer import EventProducer
from services.edge.usage.emitter import SEPARATOR, UsageEmitter
from services.edge.usage.spool import Spool
from tests.kafka_helpers import fresh_topics, read_all

EXAMPLE = Path(__file__).parents[3] / "services/common/events/examples/usage.v1/ok_stream.json"


def _event(n: int) -> UsageEventV1:
    event = UsageEventV1.model_validate_json(EXAMPLE.read_bytes())
    return event.model_copy(update={"request_id": f"req_{n:024d}"})


async def _sent_ids(bootstrap: str, topic: str, expected: int) -> list[str]:
    for _ in range(40):
        records = await read_all(bootstrap, topic)
        if len(records) >= expected:
            break
        await asyncio.sleep(0.25)
    return [UsageEventV1.from_bytes(value).request_id for _, value in records if value]


async def _started(bootstrap: str, spool: Spool, **kwargs: Any) -> tuple[UsageEmitter, EventProducer, str]:
    settings = await fresh_topics(bootstrap)
    producer = EventProducer(settings, client_id="emitter-test")
    await producer.start()
    emitter = UsageEmitter(producer, spool, max_bytes=1024 * 1024, **kwargs)
    emitter.start()
    return emitter, producer, settings.topic("usage.v1")


async def test_events_reach_kafka_once_each_in_order_without_reading_the_spool_back(
    bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path)
    reads: list[int] = []
    read = spool.read
    monkeypatch.setattr(spool, "read", lambda n, *a: (reads.append(n), read(n, *a))[1])
    emitter, producer, topic = await _started(bootstrap, spool)
    try:
        for tick in range(30):
            for i in range(10):
                emitter.emit(_event(tick * 10 + i))  # the ten of one tick go to disk in one write
            await asyncio.sleep(0.002 if tick % 3 else 0)
        assert await emitter.drained(30)
        assert spool.synced <= spool.end and spool.empty()
    finally:
        await emitter.stop()
        await producer.stop()
    assert await _sent_ids(bootstrap, topic, 300) == [f"req_{n:024d}" for n in range(300)]
    assert reads == []  # sent from memory: what was just written is not read back


async def test_a_backlog_from_an_earlier_run_goes_first_then_new_events(bootstrap: str, tmp_path: Path) -> None:
    earlier = Spool(tmp_path)
    earlier.append([e.account_id.encode() + SEPARATOR + e.to_bytes() for e in map(_event, range(5))])
    earlier.close()  # Kafka was away: nothing acknowledged
    spool = Spool(tmp_path)
    emitter, producer, topic = await _started(bootstrap, spool)
    try:
        for n in range(5, 9):
            emitter.emit(_event(n))
        assert await emitter.drained(30)
    finally:
        await emitter.stop()
        await producer.stop()
    assert await _sent_ids(bootstrap, topic, 9) == [f"req_{n:024d}" for n in range(9)]
    again = Spool(tmp_path)
    assert again.empty()  # the cursor was written on stop: nothing re-sent by the next run
    again.close()


async def test_a_spool_that_cannot_be_written_refuses_admissions_and_keeps_the_events(
    bootstrap: str, tmp_path: Path
) -> None:
    spool = Spool(tmp_path)
    emitter, producer, topic = await _started(bootstrap, spool, retry_seconds=0.1)
    writable = spool._tail
    spool._tail = os.open(tmp_path / "lock", os.O_RDONLY)  # every write now fails (EBADF)
    try:
        emitter.emit(_event(1))
        await asyncio.sleep(0.05)
        assert not emitter.accepting  # fail closed: what cannot be recorded is not served
        assert not await emitter.drained(0.3)
        os.close(spool._tail)
        spool._tail = writable  # the disk is back
        assert await emitter.drained(10)
        for _ in range(30):  # the bound is re-checked once a second
            if emitter.accepting:
                break
            await asyncio.sleep(0.1)
        assert emitter.accepting
    finally:
        await emitter.stop()
        await producer.stop()
    assert await _sent_ids(bootstrap, topic, 1) == [f"req_{1:024d}"]
