from __future__ import annotations

from pathlib import Path

from services.metering.settings import MeteringSettings
from services.metering.store import UsageStore


async def open_store(settings: MeteringSettings) -> UsageStore:
    if settings.store == "clickhouse":
        from services.metering.store.clickhouse_store import ClickHouseServerStore

        return await ClickHouseServerStore.connect(settings.clickhouse_url)
    from services.metering.store.chdb_store import ChdbStore

    Path(settings.chdb_path).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start-up
    return ChdbStore(settings.chdb_path)
