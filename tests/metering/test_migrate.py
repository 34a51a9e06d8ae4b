"""ClickHouse migrations on the real engine (chDB), and the row model tied to the table's columns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.metering.migrate import migrate, statements
from services.metering.processor import COLUMNS
from services.metering.store.chdb_store import ChdbStore


@pytest.fixture
async def blank(tmp_path: Path) -> AsyncIterator[ChdbStore]:
    chdb = ChdbStore(str(tmp_path / "chdb"))
    yield chdb
    await chdb.close()


async def test_migrations_apply_once_and_are_recorded(blank: ChdbStore) -> None:
    first = await migrate(blank)
    assert [m[:4] for m in first] == ["0001", "0002"]
    assert await migrate(blank) == []
    rows = await blank.query("SELECT name FROM schema_migrations ORDER BY version")
    assert [r["name"] for r in rows] == first


async def test_the_row_model_is_the_table_minus_its_defaults(store: ChdbStore) -> None:
    columns = await store.query(
        "SELECT name, type FROM system.columns WHERE table = 'usage_raw' AND default_kind = '' ORDER BY position"
    )
    assert [c["name"] for c in columns] == [name for name, _ in COLUMNS]
    for column, (name, sent_as) in zip(columns, COLUMNS, strict=True):
        stored = column["type"].removeprefix("LowCardinality(").removesuffix(")") if "LowCardinality" in column["type"] else column["type"]
        if name == "started_at":
            assert (stored, sent_as) == ("DateTime64(3, 'UTC')", "Int64")  # converted in the INSERT
        else:
            assert stored == sent_as, name


async def test_rollup_projections_exist_with_the_tables_partitioning_and_ttl(store: ChdbStore) -> None:
    table = (await store.query(
        "SELECT engine, partition_key, sorting_key, create_table_query FROM system.tables WHERE name = 'usage_raw'"
    ))[0]
    assert table["engine"] == "ReplacingMergeTree"
    assert table["partition_key"] == "toYYYYMM(started_at)"
    assert table["sorting_key"] == "account_id, started_at, request_id"
    ddl = table["create_table_query"]
    assert "TTL toDateTime(started_at) + toIntervalDay(400)" in ddl
    for level in ("minute", "hour", "day"):
        assert f"PROJECTION usage_by_{level}" in ddl
    assert "deduplicate_merge_projection_mode = 'rebuild'" in ddl


async def test_an_edited_migration_is_refused(blank: ChdbStore, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_t.sql").write_text("CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a")
    await migrate(blank, folder)
    (folder / "0001_t.sql").write_text("CREATE TABLE t (a UInt16) ENGINE = MergeTree ORDER BY a")
    with pytest.raises(RuntimeError, match="was edited"):
        await migrate(blank, folder)


def test_semicolons_in_comments_do_not_split_statements() -> None:
    sql = "-- one; two\nCREATE TABLE a (x UInt8) ENGINE = Log;\n-- three;\nCREATE TABLE b (y UInt8) ENGINE = Log"
    assert statements(sql) == [
        "CREATE TABLE a (x UInt8) ENGINE = Log", "CREATE TABLE b (y UInt8) ENGINE = Log",
    ]
