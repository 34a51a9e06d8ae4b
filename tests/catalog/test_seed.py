"""The catalog seed on the real PostgreSQL and Kafka: stored, versioned, published."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from infra.stack.platform import Platform
from services.catalog.seed import SEED_FILE, load_seed, seed
from services.common.events.catalog import CatalogEventV1, PriceEntry
from services.common.kafka.producer import EventProducer
from services.common.pg_migrate import migrate
from tests.conftest import unique
from tests.kafka_helpers import fresh_topics, read_all

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "catalog" / "migrations"


def test_the_shipped_seed_is_valid_and_prices_are_exact_micros() -> None:
    entities = load_seed(SEED_FILE, {"TOLLGATE_TRITON_URL": "127.0.0.1:8001"})
    prices = {e.id: e for e in entities if isinstance(e, PriceEntry)}
    mini = prices["gpt-4o-mini-2024-07-18"]
    assert (mini.input_micros_per_mtok, mini.cached_input_micros_per_mtok, mini.output_micros_per_mtok) == (
        150_000, 75_000, 600_000)
    assert any(e.kind == "deployment" and e.endpoint == "127.0.0.1:8001" for e in entities)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda s: s.replace('input: "0.15"', "input: 0.15"), "not a float"),
        (lambda s: s.replace('input: "0.15"', 'input: "0.1500001"'), "more than 6 decimal places"),
        (lambda s: s.replace('input: "0.15"', 'input: "-0.15"'), "non-negative"),
        (lambda s: s.replace("context_length: 128000", "context_length: -1"), "greater than 0"),
        (lambda s: s.replace("backend: openai", "backend: carrier-pigeon"), "Input should be"),
    ],
)
def test_a_bad_seed_is_refused_with_the_reason(tmp_path: Path, edit: object, fragment: str) -> None:
    bad = tmp_path / "seed.yaml"
    bad.write_text(edit(SEED_FILE.read_text()))  # type: ignore[operator]
    with pytest.raises(ValueError, match=fragment):
        load_seed(bad, {"TOLLGATE_TRITON_URL": "x:1"})


def test_a_missing_endpoint_variable_is_named() -> None:
    with pytest.raises(ValueError, match="TOLLGATE_TRITON_URL"):
        load_seed(SEED_FILE, {})


async def test_seed_stores_publishes_and_versions_changes(platform: Platform, tmp_path: Path) -> None:
    dsn = platform.postgres.dsn(unique("catalog").lower())
    await migrate(dsn, MIGRATIONS, create_database=True)
    settings = await fresh_topics(platform.bus.bootstrap)
    producer = EventProducer(settings, client_id="seed-test")
    await producer.start()
    env = {"TOLLGATE_TRITON_URL": "127.0.0.1:8001"}
    try:
        entities = load_seed(SEED_FILE, env)
        assert await seed(dsn, producer, entities) == len(entities)
        changed = tmp_path / "seed.yaml"
        changed.write_text(SEED_FILE.read_text().replace("display_name: GPT-4o mini", "display_name: GPT-4o mini (2024)"))
        await seed(dsn, producer, load_seed(changed, env))
        repriced = changed.read_text().replace('output: "0.60"', 'output: "0.70"')
        changed.write_text(repriced)
        with pytest.raises(ValueError, match="add a new price version"):
            await seed(dsn, producer, load_seed(changed, env))
    finally:
        await producer.stop()
    events = [CatalogEventV1.from_bytes(v) for _, v in await read_all(settings.kafka_bootstrap, settings.topic("catalog.v1")) if v]
    latest = {e.record_key: e for e in events}
    assert latest["model:gpt-4o-mini"].version == 2
    assert latest["model:gpt-4o-mini"].entity.display_name == "GPT-4o mini (2024)"  # type: ignore[union-attr]
    assert latest["model:smollm2-135m-instruct"].version == 1
    conn = await asyncpg.connect(dsn)
    try:
        output = await conn.fetchval("SELECT output_micros_per_mtok FROM prices WHERE id = 'gpt-4o-mini-2024-07-18'")
        versions = await conn.fetchval("SELECT version FROM models WHERE id = 'gpt-4o-mini'")
    finally:
        await conn.close()
    assert (output, versions) == (600_000, 2)  # the refused re-price changed nothing
