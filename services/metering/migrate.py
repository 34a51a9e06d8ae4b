"""Numbered ClickHouse migrations (``migrations/NNNN_name.sql``), applied by an explicit step.

Recorded in ``schema_migrations`` with a checksum; an edited applied migration is an error. Run by
``python -m services.metering migrate`` (``make migrate``, ``make run``, test fixtures) while metering
is not running — chDB allows one process per data directory.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from services.common.pg_migrate import load_migrations
from services.metering.store import UsageStore

log = structlog.get_logger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def statements(sql: str) -> list[str]:
    """Split a migration into statements (chDB runs one per call); ``--`` comment lines are dropped
    first so that a semicolon inside a comment never splits a statement."""
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


async def migrate(store: UsageStore, folder: Path = MIGRATIONS) -> list[str]:
    await store.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, checksum String,"
        " applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
    )
    done = {int(r["version"]): r["checksum"] for r in await store.query(
        "SELECT version, checksum FROM schema_migrations"
    )}
    applied: list[str] = []
    for m in load_migrations(folder):
        if m.version in done:
            if done[m.version] != m.checksum:
                raise RuntimeError(f"applied migration {m.name} was edited; add a new one instead")
            continue
        for statement in statements(m.sql):
            await store.execute(statement)
        await store.insert(
            "schema_migrations", [{"version": m.version, "name": m.name, "checksum": m.checksum}]
        )
        log.info("migration_applied", migration=m.name)
        applied.append(m.name)
    return applied
