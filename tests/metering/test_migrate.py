"""ClickHouse migrations on the real engine (chDB), and the row model tied to the table's columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.events.usage import UsageEventV1
from services.metering.migrate import migrate, statements
from services.metering.processor import usage_row
from services.metering.store.chdb_store import ChdbStore

EXAMPLE = Path(__file__).resolve().parents[2] / "services/common/events/examples/usage.v1/ok_stream.json"


@pytest.fixture
async def store(tmp_path: Path) -> ChdbStore:
    chdb = ChdbStore(str(tmp_path / "chdb"))
    yield chdb  # type: ignore[misc]
    await chdb.close()


async def test_migrations_apply_once_and_are_recorded(store: ChdbStore) -> None:
    first = await migrate(store)
    assert first and first[0].startswith("0001_")
    assert await migrate(store) == []
    rows = await store.query("SELECT name FROM schema_migrations ORDER BY version")
    assert [r["name"] for r in rows] == first


async def test_usage_row_matches_the_table_columns(store: ChdbStore) -> None:
    await migrate(store)
    columns = await store.query(
        "SELECT name FROM system.columns WHERE table = 'usage_raw' AND default_kind = '' ORDER BY position"
    )
    row = usage_row(UsageEventV1.from_bytes(EXAMPLE.read_bytes()))
    assert [c["name"] for c in columns] == list(row)


async def test_a_redelivered_event_is_counted_once(store: ChdbStore) -> None:
    await migrate(store)
    row = usage_row(UsageEventV1.from_bytes(EXAMPLE.read_bytes()))
    await store.insert("usage_raw", [row])
    await store.insert("usage_raw", [row, row])
    totals = await store.query("SELECT count() AS n, sum(output_tokens) AS out FROM usage_raw FINAL")
    assert (int(totals[0]["n"]), int(totals[0]["out"])) == (1, row["output_tokens"])


async def test_an_edited_migration_is_refused(store: ChdbStore, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_t.sql").write_text("CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a")
    await migrate(store, folder)
    (folder / "0001_t.sql").write_text("CREATE TABLE t (a UInt16) ENGINE = MergeTree ORDER BY a")
    with pytest.raises(RuntimeError, match="was edited"):
        await migrate(store, folder)


def test_semicolons_in_comments_do_not_split_statements() -> None:
    sql = "-- one; two\nCREATE TABLE a (x UInt8) ENGINE = Log;\n-- three;\nCREATE TABLE b (y UInt8) ENGINE = Log"
    assert statements(sql) == [
        "CREATE TABLE a (x UInt8) ENGINE = Log", "CREATE TABLE b (y UInt8) ENGINE = Log",
    ]
