"""ClickHouse server driver (production) through clickhouse-connect's async client.

NOT exercised by the test suite: no modern ClickHouse server can be installed on these machines
(docs/operations.md). It runs the very same SQL strings as ChdbStore, which the tests do run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import clickhouse_connect

from services.metering.store import Row


class ClickHouseServerStore:
    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    async def connect(cls, url: str) -> ClickHouseServerStore:
        client = await clickhouse_connect.get_async_client(dsn=url)
        return cls(client)

    async def execute(self, sql: str) -> None:
        await self._client.command(sql)

    async def query(self, sql: str) -> list[dict[str, Any]]:
        result = await self._client.query(sql)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    async def insert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        columns = list(rows[0].keys())
        await self._client.insert(table, [[r[c] for c in columns] for r in rows], column_names=columns)

    async def close(self) -> None:
        await self._client.close()
