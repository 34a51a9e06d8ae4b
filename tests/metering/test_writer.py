"""The writer on the real engine (chDB): a request id is stored once however often it arrives, and the
rollups count exactly the rows that were kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.metering.processor import Rejected, UsageRow, to_row
from services.metering.store.chdb_store import ChdbStore
from services.metering.writer import UsageWriter, quote, windows
from tests.metering.factory import PRICES, T0, raw, spread, totals, usage

SUMS = ("count() AS requests, countIf(status = 'error') AS failed_requests, sum(input_tokens) AS input_tokens, "
        "sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
        "sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, "
        "sum(cost_micros) AS cost_micros")


def rows_of(events: list[dict[str, Any]]) -> list[UsageRow]:
    out = []
    for e in events:
        row = to_row(raw(e), PRICES)
        assert not isinstance(row, Rejected), row
        out.append(row)
    return out


async def sums(store: ChdbStore, how: str = "raw") -> dict[str, int]:
    """Totals read three ways: raw rows, raw rows with FINAL, or from the day rollup only."""
    sql = {
        "raw": f"SELECT {SUMS} FROM usage_raw SETTINGS optimize_use_projections = 0",
        "final": f"SELECT {SUMS} FROM usage_raw FINAL",
        "rollup": f"SELECT toStartOfDay(started_at) AS d, {SUMS} FROM usage_raw GROUP BY d "
                  "SETTINGS force_optimize_projection = 1",
    }[how]
    rows = await store.query(sql)
    keys = ("requests", "failed_requests", "input_tokens", "cached_input_tokens", "cache_write_tokens",
            "output_tokens", "reasoning_tokens", "cost_micros")
    return {k: sum(int(r[k]) for r in rows) for k in keys}


async def assert_exactly(store: ChdbStore, events: list[dict[str, Any]]) -> None:
    expected = totals(events)
    for how in ("raw", "final", "rollup"):
        assert await sums(store, how) == expected, how
    dupes = await store.query("SELECT count() - uniqExact(request_id) AS d FROM usage_raw")
    assert int(dupes[0]["d"]) == 0


async def test_a_redelivered_batch_is_not_counted_twice_in_raw_rows_or_rollups(store: ChdbStore) -> None:
    events = spread(300)
    writer = UsageWriter(store)
    await writer.write(rows_of(events))
    await writer.write(rows_of(events))  # the whole batch again (the consumer died before its commit)
    await writer.write(rows_of(events[100:250]))  # a redelivery with other batch boundaries
    await assert_exactly(store, events)


async def test_a_batch_that_overlaps_the_stored_rows_adds_only_the_new_ones(store: ChdbStore) -> None:
    events = spread(200)
    writer = UsageWriter(store)
    await writer.write(rows_of(events[:120]))
    await writer.write(rows_of(events[80:]))
    await assert_exactly(store, events)


async def test_two_copies_in_one_batch_count_once(store: ChdbStore) -> None:
    events = spread(50)
    copies = events + events[10:20] + [events[0]]  # an edge spool re-sent what Kafka already had
    await UsageWriter(store).write(rows_of(copies))
    await assert_exactly(store, events)


async def test_a_late_copy_far_from_the_rest_of_its_batch_is_still_found(store: ChdbStore) -> None:
    old = usage(started_at=T0 - timedelta(days=20))
    await UsageWriter(store).write(rows_of([old]))
    fresh = spread(40, start=T0)
    await UsageWriter(store).write(rows_of([*fresh, old]))  # two windows, 20 days apart
    await assert_exactly(store, [old, *fresh])


async def test_the_same_request_id_in_two_accounts_is_two_requests(store: ChdbStore) -> None:
    a = usage(request_id="req_same", account_id="acct_a")
    b = usage(request_id="req_same", account_id="acct_b")
    writer = UsageWriter(store)
    await writer.write(rows_of([a]))
    await writer.write(rows_of([b]))
    rows = await store.query("SELECT account_id FROM usage_raw ORDER BY account_id")
    assert [r["account_id"] for r in rows] == ["acct_a", "acct_b"]


async def test_strange_but_valid_text_is_stored_as_sent(store: ChdbStore) -> None:
    odd = "it's a \\ \"model\" — ünïcode\n\t'); DROP TABLE usage_raw; --"
    event = usage(model_requested=odd, error_type="x'y\\z", edge_id="édge\u2028")
    await UsageWriter(store).write(rows_of([event]))
    row = (await store.query("SELECT model_requested, error_type, edge_id FROM usage_raw"))[0]
    assert (row["model_requested"], row["error_type"], row["edge_id"]) == (odd, "x'y\\z", "édge\u2028")


async def test_an_empty_batch_writes_nothing(store: ChdbStore) -> None:
    await UsageWriter(store).write([])
    assert await sums(store) == totals([])


def test_windows_split_on_gaps_and_merge_down_to_the_limit() -> None:
    assert windows([]) == []
    assert windows([5, 1, 3], gap_ms=10) == [(1, 5)]
    assert windows([1, 100, 105, 1000], gap_ms=10) == [(1, 1), (100, 105), (1000, 1000)]
    merged = windows([0, 100, 150, 1000], gap_ms=10, most=2)
    assert merged == [(0, 150), (1000, 1000)]  # the smallest gap (100 → 150) went first, then 0 → 100


def test_quote_escapes_what_clickhouse_would_read_as_syntax() -> None:
    assert quote("a'b\\c") == "'a\\'b\\\\c'"
