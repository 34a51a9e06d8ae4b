"""Metering on the real broker and chDB: replays, redeliveries, bad events, late prices, failed requests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import REGISTRY

from services.common.events.catalog import CatalogEventV1
from services.common.money import format_micros
from services.metering.api.context import Deps
from services.metering.api.dispatch import dispatch
from services.metering.migrate import migrate
from services.metering.store.chdb_store import ChdbStore
from tests.conftest import unique
from tests.kafka_helpers import read_all
from tests.metering.factory import PRICES, T0, spread, totals, usage
from tests.metering.kafka import caught_up, metering_settings, produce, publish_prices, running
from tests.metering.test_usage_api import ADMIN
from tests.metering.test_writer import sums

EVERYTHING = "from=2026-10-01&to=2026-12-01&group_by=day&breakdown=account,key,model"


async def usage_answer(store: ChdbStore) -> Any:
    status, body = await dispatch(Deps(store), ADMIN, "GET", "/v1/manage/usage", EVERYTHING, b"")
    assert status == 200
    return orjson.loads(body)


async def fresh_store(path: Path) -> ChdbStore:
    store = ChdbStore(str(path))
    await migrate(store)
    return store


def dead_letters(kind: str) -> float:
    return REGISTRY.get_sample_value("tollgate_metering_dead_letters_total", {"kind": kind}) or 0.0


async def test_replaying_usage_from_offset_zero_gives_the_same_totals_to_the_micro_dollar(
    bootstrap: str, tmp_path: Path
) -> None:
    settings = await metering_settings(bootstrap)
    events = spread(2500)
    resent = events[100:400]  # an edge's spool re-sent these after a lost ack: same ids, later offsets
    produced = await produce(settings, [*events, *resent])
    expected = totals(events)
    first = await fresh_store(tmp_path / "first")
    try:
        async with running(settings, first):
            await caught_up(settings, produced)
        answer = await usage_answer(first)
        assert await sums(first) == expected == await sums(first, "rollup")
        assert answer["totals"]["cost"] == format_micros(expected["cost_micros"])
        # the whole topic again, from offset 0, into the same store (a new group): nothing changes
        group = unique("metering.replay")
        async with running(settings, first, group):
            await caught_up(settings, produced, group)
        assert await usage_answer(first) == answer
        assert await sums(first) == expected == await sums(first, "rollup")
    finally:
        await first.close()
    second = await fresh_store(tmp_path / "second")  # and into an empty store: the same answer
    try:
        group = unique("metering.replay")
        async with running(settings, second, group):
            await caught_up(settings, produced, group)
        assert await usage_answer(second) == answer
    finally:
        await second.close()


async def test_bad_events_go_to_the_dead_letter_topic_counted_and_the_consumer_goes_on(
    bootstrap: str, store: ChdbStore
) -> None:
    settings = await metering_settings(bootstrap, price_wait_seconds=0.5)
    good = [usage(), usage(), usage()]
    bad: list[bytes | dict[str, Any]] = [
        b"{not json", usage(tokens={"output": -3}), usage(account_id=""), usage(key_id=""),
        usage(price_version="p_nobody_published"),
    ]
    before = {k: dead_letters(k) for k in ("schema", "unknown_price_version")}
    produced = await produce(settings, [good[0], *bad, good[1]])
    async with running(settings, store):
        await caught_up(settings, produced)
        later = await produce(settings, [good[2]])  # the consumer is still consuming
        await caught_up(settings, produced + later)
    stored = await store.query("SELECT request_id FROM usage_raw ORDER BY request_id")
    assert [r["request_id"] for r in stored] == sorted(e["request_id"] for e in good)
    dead = [orjson.loads(v or b"{}") for _, v in await read_all(bootstrap, settings.topic("usage.v1.dlq"))]
    reasons = sorted(d["reason"] for d in dead)
    assert len(reasons) == 5
    assert [r.split(":")[0] for r in reasons] == ["schema"] * 4 + ["unknown_price_version"]
    assert any("tokens.output" in r for r in reasons)
    assert any("account_id" in r for r in reasons) and any("key_id" in r for r in reasons)
    assert all(d["topic"] == settings.topic("usage.v1") and "offset" in d for d in dead)
    assert dead_letters("schema") == before["schema"] + 4
    assert dead_letters("unknown_price_version") == before["unknown_price_version"] + 1


async def test_an_event_whose_price_reaches_metering_after_it_is_priced_not_dead_lettered(
    bootstrap: str, store: ChdbStore
) -> None:
    settings = await metering_settings(bootstrap, price_wait_seconds=30)
    late = PRICES["p_mini"].model_copy(update={"id": "p_late", "input_micros_per_mtok": 1_000_000})
    event = usage(price_version="p_late", tokens={"input": 5000, "output": 0})
    produced = await produce(settings, [event])
    async with running(settings, store):
        await asyncio.sleep(1.5)  # the consumer has the event and no price for it: it waits
        assert int((await store.query("SELECT count() AS n FROM usage_raw"))[0]["n"]) == 0
        await publish_prices(settings, [CatalogEventV1(version=1, entity=late, updated_at=T0)])
        await caught_up(settings, produced)
    row = (await store.query("SELECT price_version, cost_micros FROM usage_raw"))[0]
    assert (row["price_version"], int(row["cost_micros"])) == ("p_late", 5000)
    assert await read_all(bootstrap, settings.topic("usage.v1.dlq"), timeout=2) == []


async def test_a_request_that_failed_before_its_first_token_is_recorded_with_its_status_and_zero_cost(
    bootstrap: str, store: ChdbStore
) -> None:
    settings = await metering_settings(bootstrap)
    failed = usage(tokens={"input": 0, "output": 0}, status="error", error_type="upstream_timeout",
                   ttft_ms=None, duration_ms=30000, attempts=3)
    produced = await produce(settings, [failed, usage()])
    async with running(settings, store):
        await caught_up(settings, produced)
    row = (await store.query(
        f"SELECT status, error_type, cost_micros, output_tokens, ttft_ms, attempts FROM usage_raw "
        f"WHERE request_id = '{failed['request_id']}'"
    ))[0]
    assert (row["status"], row["error_type"], int(row["cost_micros"]), int(row["output_tokens"]), row["ttft_ms"],
            row["attempts"]) == ("error", "upstream_timeout", 0, 0, None, 3)
    answer = await usage_answer(store)
    assert answer["totals"]["failed_requests"] == 1 and answer["totals"]["requests"] == 2
