"""The per-minute / hour / day rollups are the raw sums, read from the projections (not the raw rows)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.metering.store.chdb_store import ChdbStore
from services.metering.writer import UsageWriter
from tests.metering.factory import T0, spread
from tests.metering.test_writer import SUMS, rows_of

LEVELS = {"minute": "toStartOfMinute", "hour": "toStartOfHour", "day": "toStartOfDay"}


@pytest.mark.parametrize("level", list(LEVELS))
async def test_each_rollup_equals_the_raw_sums_per_account_key_model_and_bucket(store: ChdbStore, level: str) -> None:
    events = spread(1500, start=T0 - timedelta(days=2), step=timedelta(minutes=3, seconds=11))
    writer = UsageWriter(store)
    for i in range(0, len(events), 400):
        await writer.write(rows_of(events[i:i + 400]))  # several parts, merged or not
    bucket = f"{LEVELS[level]}(started_at)"
    query = (f"SELECT account_id, key_id, model_served, {bucket} AS b, {SUMS} FROM usage_raw "
             f"GROUP BY account_id, key_id, model_served, b ORDER BY account_id, key_id, model_served, b")
    from_rollup = await store.query(query + " SETTINGS force_optimize_projection = 1")
    from_raw = await store.query(query + " SETTINGS optimize_use_projections = 0")
    assert from_rollup == from_raw
    assert len(from_raw) > 10
    assert sum(int(r["requests"]) for r in from_raw) == 1500


async def test_rollups_stay_exact_after_parts_are_merged(store: ChdbStore) -> None:
    events = spread(600)
    writer = UsageWriter(store)
    for i in range(0, 600, 100):
        await writer.write(rows_of(events[i:i + 100]))
    await store.execute("OPTIMIZE TABLE usage_raw FINAL")
    parts = await store.query("SELECT count() AS n FROM system.parts WHERE table = 'usage_raw' AND active")
    assert int(parts[0]["n"]) == 1
    q = f"SELECT toStartOfHour(started_at) AS h, {SUMS} FROM usage_raw GROUP BY h ORDER BY h"
    assert await store.query(q + " SETTINGS force_optimize_projection = 1") == await store.query(
        q + " SETTINGS optimize_use_projections = 0")
