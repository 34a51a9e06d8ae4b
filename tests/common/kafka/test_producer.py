"""EventProducer.publish_many on the real broker: every record acknowledged, in order per key, and a
record the producer refuses reported as its own failure without losing its neighbours; the key
partitioner puts a key where aiokafka's default (and the Java client) would."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from services.common.kafka import producer as producer_module
from services.common.kafka.producer import EventProducer, KeyPartitioner
from tests.kafka_helpers import fresh_topics


async def test_publish_many_acks_each_record_and_keeps_per_key_order(bootstrap: str) -> None:
    settings = await fresh_topics(bootstrap)
    producer = EventProducer(settings, client_id="producer-test")
    await producer.start()
    records = [(f"acct_{i % 3}".encode(), f"{i}".encode()) for i in range(200)]
    too_big = (b"acct_0", b"x" * 2_000_000)  # over the producer's max request size: refused locally
    try:
        results = await producer.publish_many("requests.v1", [*records[:100], too_big, *records[100:]])
    finally:
        await producer.stop()
    assert [r is None for r in results] == [True] * 100 + [False] + [True] * 100
    assert type(results[100]).__name__ == "MessageSizeTooLargeError"

    consumer = AIOKafkaConsumer(
        settings.topic("requests.v1"), bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[bytes, list[int]] = {}
    try:
        while sum(len(v) for v in seen.values()) < len(records):
            batches = await consumer.getmany(timeout_ms=5000)
            assert batches, "records missing from the topic"
            for batch in batches.values():
                for message in batch:
                    assert message.key is not None and message.value is not None
                    seen.setdefault(message.key, []).append(int(message.value))
    finally:
        await consumer.stop()
    for key in (b"acct_0", b"acct_1", b"acct_2"):
        assert seen[key] == [i for i in range(200) if f"acct_{i % 3}".encode() == key]


def test_the_key_partitioner_agrees_with_the_default_and_hashes_each_key_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = DefaultPartitioner()
    partitioner = KeyPartitioner(max_keys=50)
    keys = [f"acct_{i}".encode() for i in range(200)]
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for key in keys:
            assert partitioner(key, partitions, partitions) == default(key, partitions, partitions)
    hashed: list[bytes] = []
    real = producer_module.murmur2
    monkeypatch.setattr(producer_module, "murmur2", lambda key: (hashed.append(key), real(key))[1])
    partitioner = KeyPartitioner()
    for _ in range(3):
        for key in keys[:10]:
            partitioner(key, [0, 1, 2], [0, 1, 2])
    assert hashed == keys[:10]  # once per key: the rest came from memory
    assert partitioner(None, [0, 1, 2], [2]) == 2  # no key: any available partition, as before
