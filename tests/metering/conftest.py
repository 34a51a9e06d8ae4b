from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.metering.migrate import migrate
from services.metering.store.chdb_store import ChdbStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ChdbStore]:
    """An empty, migrated chDB store of its own."""
    chdb = ChdbStore(str(tmp_path / "chdb"))
    await migrate(chdb)
    yield chdb
    await chdb.close()
