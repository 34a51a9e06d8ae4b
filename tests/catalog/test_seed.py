"""The catalog seed on the real PostgreSQL and Kafka: stored, versioned, audited, published."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from infra.stack.platform import Platform
from services.catalog.records import ModelRecord, PriceRecord
from services.catalog.seed import SEED_FILE, load_seed, seed
from services.common.events.catalog import CatalogEventV1
from services.common.kafka.producer import EventProducer
from tests.catalog.conftest import TRITON, new_database
from tests.kafka_helpers import fresh_topics, read_all


def test_the_shipped_seed_is_valid_and_prices_are_exact_micros() -> None:
    records = load_seed(SEED_FILE, TRITON)
    prices = {r.id: r for r in records if isinstance(r, PriceRecord)}
    mini = prices["gpt-4o-mini-2024-07-18"]
    assert (mini.input_micros_per_mtok, mini.cached_input_micros_per_mtok, mini.output_micros_per_mtok) == (
        150_000, 75_000, 600_000)
    assert prices["gpt-4o-2024-08-06"].batch_discount_bps == 5000
    smol = prices["smollm2-2026-11-01"]  # what the SDK tests assert: $0.00000002 / $0.00000004 per token
    assert (smol.input_micros_per_mtok, smol.output_micros_per_mtok) == (20_000, 40_000)
    assert any(r.id == "smollm2-triton-cpu" and r.endpoint == "127.0.0.1:8001" for r in records)  # type: ignore[attr-defined]
    models = {r.id: r for r in records if isinstance(r, ModelRecord)}
    assert {"gpt-4o", "gpt-4.1", "o3", "claude-sonnet-4-5", "claude-opus-4-1", "llama-3.3-70b-versatile"} <= set(models)
    assert every_model_has_a_price(records)
    assert not models["local-openai-ok"].enabled and models["smollm2-135m-instruct"].enabled


def every_model_has_a_price(records: list[object]) -> bool:
    priced = {r.model_id for r in records if isinstance(r, PriceRecord)}
    return {r.id for r in records if isinstance(r, ModelRecord)} <= priced


def test_endpoint_variables_take_defaults_and_a_missing_one_is_named() -> None:
    records = load_seed(SEED_FILE, {**TRITON, "TOLLGATE_TEST_UPSTREAM_URL": "http://127.0.0.1:1234"})
    assert any(getattr(r, "endpoint", "") == "http://127.0.0.1:1234/v1" for r in records)
    defaulted = load_seed(SEED_FILE, TRITON)
    assert any(getattr(r, "endpoint", "") == "http://127.0.0.1:18090/v1" for r in defaulted)
    with pytest.raises(ValueError, match="TOLLGATE_TRITON_URL"):
        load_seed(SEED_FILE, {})


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda s: s.replace('input: "0.15"', "input: 0.15"), "not a float"),
        (lambda s: s.replace('input: "0.15"', 'input: "0.1500001"'), "more than 6 decimal places"),
        (lambda s: s.replace('input: "0.15"', 'input: "-0.15"'), "non-negative"),
        (lambda s: s.replace('batch_discount: "50"', 'batch_discount: "150"', 1), "between 0 and 100"),
        (lambda s: s.replace("context_length: 128000", "context_length: -1", 1), "greater than 0"),
        (lambda s: s.replace("backend: openai", "backend: carrier-pigeon", 1), "Input should be"),
        (lambda s: s.replace("chat_template: chatml", "chat_template: chatml\n    colour: blue"), "Extra inputs"),
    ],
)
def test_a_bad_seed_is_refused_with_the_reason(tmp_path: Path, edit: object, fragment: str) -> None:
    bad = tmp_path / "seed.yaml"
    bad.write_text(edit(SEED_FILE.read_text()))  # type: ignore[operator]
    with pytest.raises(ValueError, match=fragment):
        load_seed(bad, TRITON)


async def test_seed_stores_publishes_versions_and_audits_changes(platform: Platform, tmp_path: Path) -> None:
    dsn = await new_database(platform)
    settings = await fresh_topics(platform.bus.bootstrap)
    producer = EventProducer(settings, client_id="seed-test")
    await producer.start()
    try:
        records = load_seed(SEED_FILE, TRITON)
        assert await seed(dsn, producer, records) == len(records)
        assert await seed(dsn, producer, records) == 0  # a re-run changes nothing
        changed = tmp_path / "seed.yaml"
        changed.write_text(SEED_FILE.read_text().replace("display_name: GPT-4o mini", "display_name: GPT-4o mini (2024)"))
        assert await seed(dsn, producer, load_seed(changed, TRITON)) == 1
        changed.write_text(changed.read_text().replace('output: "0.60"', 'output: "0.70"'))
        with pytest.raises(ValueError, match="add a new version"):
            await seed(dsn, producer, load_seed(changed, TRITON))
        history = changed.read_text().replace("prices:\n", (
            "prices:\n  - {id: gpt-4o-mini-late, model_id: gpt-4o-mini, effective_from: \"2025-01-01T00:00:00Z\",\n"
            "     input: \"1\", cached_input: \"1\", cache_write: \"1\", output: \"1\"}\n"), 1)
        changed.write_text(history.replace('output: "0.70"', 'output: "0.60"'))
        with pytest.raises(ValueError, match="must not be in the past"):  # history is loaded once, never rewritten
            await seed(dsn, producer, load_seed(changed, TRITON))
    finally:
        await producer.stop()
    events = [CatalogEventV1.from_bytes(v) for _, v in await read_all(settings.kafka_bootstrap, settings.topic("catalog.v1")) if v]
    latest = {e.record_key: e for e in events}
    first = {e.record_key: e for e in reversed(events)}
    assert latest["model:gpt-4o-mini"].version > first["model:gpt-4o-mini"].version
    assert latest["model:gpt-4o-mini"].entity.display_name == "GPT-4o mini (2024)"  # type: ignore[union-attr]
    assert latest["model:smollm2-135m-instruct"].version == first["model:smollm2-135m-instruct"].version
    assert latest["model:local-openai-ok"].deleted  # disabled: held, not served
    assert not latest["model:smollm2-135m-instruct"].deleted
    conn = await asyncpg.connect(dsn)
    try:
        output = await conn.fetchval("SELECT output_micros_per_mtok FROM prices WHERE id = 'gpt-4o-mini-2024-07-18'")
        late = await conn.fetchval("SELECT count(*) FROM prices WHERE id = 'gpt-4o-mini-late'")
        audit = await conn.fetch("SELECT action, actor, before, after FROM catalog_audit WHERE entity_id = 'gpt-4o-mini'"
                                 " AND entity_kind = 'model' ORDER BY id")
        unpublished = await conn.fetchval("SELECT count(*) FROM models WHERE state_version > published_version")
    finally:
        await conn.close()
    assert (output, late) == (600_000, 0)  # the refused re-price and history changed nothing
    assert [(a["action"], a["actor"]) for a in audit] == [("create", "seed"), ("update", "seed")]
    assert '"GPT-4o mini"' in audit[1]["before"] and '"GPT-4o mini (2024)"' in audit[1]["after"]
    assert unpublished == 0
