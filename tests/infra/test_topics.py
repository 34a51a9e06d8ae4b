"""The declared topics on the real broker: configs applied, and compaction keeping the latest value."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from infra.stack.topics import ensure_topics, load_topics
from tests.kafka_helpers import read_all


async def test_declared_topics_exist_with_their_partitions_and_cleanup_policy(bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    names = await ensure_topics(bootstrap, prefix=prefix)
    assert await ensure_topics(bootstrap, prefix=prefix) == names  # idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(names)}
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        )
    finally:
        await admin.close()
    policy = {}
    for response in configs:
        for resource in response.resources:
            entries = {e[0]: e[1] for e in resource[4]}
            policy[resource[3]] = entries["cleanup.policy"]
    for spec in load_topics():
        full = prefix + spec.name
        assert len(described[full]["partitions"]) == spec.partitions
        expected = "compact" if spec.name in ("keys.v1", "catalog.v1") else "delete"
        assert policy[full] == expected


async def test_compacted_topic_keeps_only_the_latest_value_per_key_after_a_segment_roll(bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    fast = {"segment.ms": "100", "min.cleanable.dirty.ratio": "0.001", "min.compaction.lag.ms": "0",
            "delete.retention.ms": "100"}
    await ensure_topics(bootstrap, prefix=prefix, overrides={"keys.v1": fast})
    topic = prefix + "keys.v1"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for version in range(1, 6):
            for key in range(8):
                await producer.send_and_wait(topic, key=f"key_{key}".encode(), value=f"v{version}".encode())
            await asyncio.sleep(0.3)  # let segment.ms pass so the next write rolls a new segment
        latest: dict[bytes | None, bytes | None] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            # Kafka closes a segment only when something is appended after segment.ms, and never
            # compacts the open one: roll every partition, then look.
            for partition in range(3):
                await producer.send_and_wait(topic, key=b"roll", value=b"x", partition=partition)
            per_key = [r for r in await read_all(bootstrap, topic) if r[0] != b"roll"]
            latest = dict(per_key)
            if len(per_key) == 8:
                break
            assert loop.time() < deadline, f"not compacted: {per_key}"
            await asyncio.sleep(1.0)
    finally:
        await producer.stop()
    assert latest == {f"key_{k}".encode(): b"v5" for k in range(8)}
