"""Create Tollgate's topics from ``infra/topics.yaml``, the one place they are declared.

Our brokers run with ``auto.create.topics.enable=false``, so services never create topics implicitly
with default settings (a compacted topic created as ``delete`` would silently lose keys). Every start
path — ``make run``, test fixtures — calls :func:`ensure_topics` first.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code
from pydantic import BaseModel, ConfigDict, Field, field_validator

from infra.stack.paths import REPO_ROOT

TOPICS_FILE = REPO_ROOT / "infra" / "topics.yaml"
TOPIC_ALREADY_EXISTS = 36
LEADER_WAIT_S = 30.0

log = logging.getLogger(__name__)


class TopicSpec(BaseModel):
    """One declared topic: its unprefixed name, partition count and topic-level configs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    partitions: int = Field(ge=1)
    config: dict[str, str] = Field(default_factory=dict)

    @field_validator("config", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        """YAML reads ``604800000`` as an int; Kafka wants every config value as a string."""
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value


def load_topics(path: Path = TOPICS_FILE) -> list[TopicSpec]:
    """The declared topics, validated (a typo in topics.yaml fails here, not at produce time)."""
    raw = yaml.safe_load(path.read_text())
    specs = [TopicSpec.model_validate(item) for item in raw["topics"]]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate topic in {path}: {names}")
    return specs


async def ensure_topics(
    bootstrap: str,
    prefix: str = "",
    overrides: dict[str, dict[str, str]] | None = None,
    *,
    replication_factor: int = 1,
    lenient_configs: bool = False,
) -> list[str]:
    """Create the declared topics that do not exist yet; return all their (prefixed) names.

    ``prefix`` gives each test run its own topics on a shared broker; ``overrides`` maps an
    unprefixed topic name to configs merged over the declared ones (a test shrinking segment.ms to
    see compaction in seconds). Existing topics are left alone: changing partitions or configs of a
    live topic is a migration, not something a start-up should do behind anyone's back.

    A topic whose configs the broker rejects fails the call with the broker's message. With
    ``lenient_configs`` it is instead created without configs and a warning is logged. That is not
    the default because only Apache Kafka ever rejects them (Tansu 0.6.0 accepts any key and value,
    even ``retention.ms=abc``, and ignores them), and on Kafka the fallback would turn a typo in
    topics.yaml into a ``keys.v1`` with cleanup.policy=delete: keys silently gone after retention.
    Each broker request times out after 30 s; wrap the call in ``asyncio.timeout`` for a hard bound.
    """
    specs = load_topics()
    overrides = overrides or {}
    unknown = set(overrides) - {s.name for s in specs}
    if unknown:
        raise ValueError(f"overrides for undeclared topics: {sorted(unknown)}")
    wanted = {prefix + s.name: s.model_copy(update={"config": {**s.config, **overrides.get(s.name, {})}})
              for s in specs}

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        failed = await _create(admin, {n: wanted[n] for n in missing}, replication_factor, True)
        if failed and not lenient_configs:
            raise RuntimeError(f"broker rejected topics: {failed}")
        if failed:
            log.warning("broker rejected topic configs, creating without them: %s", failed)
            still = await _create(admin, {n: wanted[n] for n in failed}, replication_factor, False)
            if still:
                raise RuntimeError(f"could not create topics: {still}")
        async with asyncio.timeout(LEADER_WAIT_S):
            await _wait_for_leaders(admin, list(wanted))
    finally:
        await admin.close()
    return list(wanted)


async def _create(
    admin: AIOKafkaAdminClient, specs: dict[str, TopicSpec], replication_factor: int, with_config: bool
) -> dict[str, str]:
    """CreateTopics for ``specs``; returns {name: error} for the ones that failed.

    aiokafka returns per-topic error codes instead of raising, so they are checked here;
    TOPIC_ALREADY_EXISTS counts as success (a parallel run created it first).
    """
    if not specs:
        return {}
    new = [NewTopic(name, s.partitions, replication_factor, topic_configs=s.config if with_config else {})
           for name, s in specs.items()]
    resp = await admin.create_topics(new)
    failed: dict[str, str] = {}
    for entry in resp.topic_errors:
        name, code = entry[0], entry[1]
        if code not in (0, TOPIC_ALREADY_EXISTS):
            message = entry[2] if len(entry) > 2 and entry[2] else ""
            failed[name] = f"{for_code(code).__name__}: {message}".strip()
    return failed


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Wait until every partition has a leader: CreateTopics returns once the controller committed
    the topic, a moment before the broker serves it, and a producer in that gap gets errors."""
    while True:
        described = await admin.describe_topics(names)
        ok = {t["topic"] for t in described
              if t["error_code"] == 0 and t["partitions"]
              and all(p["leader"] >= 0 for p in t["partitions"])}
        if ok >= set(names):
            return
        await asyncio.sleep(0.1)
