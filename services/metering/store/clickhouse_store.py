"""ClickHouse server driver (production) through clickhouse-connect's HTTP client.

NOT exercised by the test suite: no modern ClickHouse server can be installed on these machines
(docs/operations.md). It runs the very same SQL strings as ChdbStore, which the tests do run. The
synchronous client runs in worker threads (its async client needs aiohttp, which Tollgate does not
ship); clickhouse-connect's HTTP pool makes concurrent calls safe. A server that cannot be reached
surfaces as ``ConnectionError``, which the usage API answers with 503 and the consumer retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.exceptions import OperationalError

from services.metering.store import MAX_QUERY_BYTES, Row

T = TypeVar("T")
_SETTINGS = {"max_query_size": MAX_QUERY_BYTES}


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except OperationalError as exc:  # connection refused, timeout, server gone
        raise ConnectionError(f"ClickHouse server unreachable: {type(exc).__name__}") from exc


class ClickHouseServerStore:
    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    async def connect(cls, url: str) -> ClickHouseServerStore:
        return cls(await _call(clickhouse_connect.get_client, dsn=url))

    async def execute(self, sql: str) -> None:
        await _call(self._client.command, sql, settings=_SETTINGS)

    async def query(self, sql: str) -> list[dict[str, Any]]:
        result = await _call(self._client.query, sql)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    async def insert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        columns = list(rows[0].keys())
        await _call(self._client.insert, table, [[r[c] for c in columns] for r in rows], column_names=columns)

    async def close(self) -> None:
        await _call(self._client.close)
