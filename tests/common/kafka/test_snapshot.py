"""A compacted-topic snapshot (what every edge builds from keys.v1) on the real broker."""

from __future__ import annotations

from pathlib import Path

from services.common.events.keys import KeyEventV1
from services.common.kafka.producer import EventProducer
from services.common.kafka.snapshot import CompactedSnapshot
from tests.kafka_helpers import eventually, fresh_topics

EXAMPLE = Path(__file__).resolve().parents[3] / "services/common/events/examples/keys.v1/active_key.json"


def key_event(key_id: str, version: int, status: str = "active") -> KeyEventV1:
    base = KeyEventV1.from_bytes(EXAMPLE.read_bytes())
    return base.model_copy(update={"key_id": key_id, "version": version, "status": status})


async def test_snapshot_loads_history_then_follows_changes(bootstrap: str) -> None:
    settings = await fresh_topics(bootstrap)
    producer = EventProducer(settings, client_id="billing-test")
    await producer.start()
    for i in range(30):
        await producer.publish("keys.v1", f"key_{i}", key_event(f"key_{i}", 1))
    await producer.publish("keys.v1", "key_3", key_event("key_3", 2, "revoked"))

    snapshot: CompactedSnapshot[KeyEventV1] = CompactedSnapshot(settings, "keys.v1", KeyEventV1.from_bytes)
    await snapshot.start()
    try:
        await eventually(lambda: _is_set(snapshot), what="snapshot ready")
        assert len(snapshot) == 30
        revoked = snapshot.get("key_3")
        assert revoked is not None and revoked.status == "revoked"

        # live changes: a newer version replaces, an older one is ignored, a tombstone deletes
        await producer.publish("keys.v1", "key_5", key_event("key_5", 7, "disabled"))
        await producer.publish("keys.v1", "key_5", key_event("key_5", 6, "active"))
        await producer.publish("keys.v1", "key_9", None)
        await eventually(lambda: _gone(snapshot, "key_9"), what="tombstone applied")
        key5 = snapshot.get("key_5")
        assert key5 is not None and (key5.version, key5.status) == (7, "disabled")
        assert len(snapshot) == 29
    finally:
        await snapshot.stop()
        await producer.stop()


async def _is_set(snapshot: CompactedSnapshot[KeyEventV1]) -> bool:
    return snapshot.ready.is_set()


async def _gone(snapshot: CompactedSnapshot[KeyEventV1], key: str) -> bool:
    return snapshot.get(key) is None
