"""PostgreSQL migrations of billing and catalog on the real server, each in its own database."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from infra.stack.platform import Platform
from services.common.pg_migrate import migrate
from tests.conftest import unique

SERVICES = Path(__file__).resolve().parents[2] / "services"


@pytest.mark.parametrize(
    ("service", "tables"),
    [
        ("billing", {"accounts", "plans", "api_keys"}),
        ("catalog", {"models", "deployments", "prices", "aliases"}),
    ],
)
async def test_migrations_create_the_schema_once(platform: Platform, service: str, tables: set[str]) -> None:
    dsn = platform.postgres.dsn(unique(service).lower())
    applied = await migrate(dsn, SERVICES / service / "migrations", create_database=True)
    assert applied and applied[0].startswith("0001_")
    assert await migrate(dsn, SERVICES / service / "migrations") == []
    conn = await asyncpg.connect(dsn)
    try:
        found = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    finally:
        await conn.close()
    assert tables | {"schema_migrations"} <= found


@pytest.mark.parametrize("service", ["billing", "catalog"])
async def test_money_columns_are_integers_never_floats(platform: Platform, service: str) -> None:
    dsn = platform.postgres.dsn(unique(f"money_{service}").lower())
    await migrate(dsn, SERVICES / service / "migrations", create_database=True)
    conn = await asyncpg.connect(dsn)
    try:
        kinds = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema='public'"
        )
    finally:
        await conn.close()
    assert not [k for k in kinds if k["data_type"] in ("real", "double precision", "numeric")]
    money = [k for k in kinds if "micros" in k["column_name"]]
    assert money and {k["data_type"] for k in money} == {"bigint"}


async def test_a_failing_migration_leaves_nothing_behind(platform: Platform, tmp_path: Path) -> None:
    dsn = platform.postgres.dsn(unique("broken").lower())
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE a (x int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE b (y int); SELECT no_such_function();")
    with pytest.raises(asyncpg.PostgresError):
        await migrate(dsn, tmp_path, create_database=True)
    conn = await asyncpg.connect(dsn)
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        has_b = await conn.fetchval("SELECT to_regclass('public.b') IS NOT NULL")
    finally:
        await conn.close()
    assert versions == [1]
    assert has_b is False
