"""chDB driver. chDB allows ONE process per data directory, which is why metering alone owns it.

chDB calls block (and release the GIL), so they run in a worker thread; one lock serialises them on
the one session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from chdb import session

from services.metering.store import MAX_QUERY_BYTES, Row


class ChdbStore:
    def __init__(self, path: str) -> None:
        self._session = session.Session(path)  # type: ignore[no-untyped-call]
        self._lock = asyncio.Lock()
        self._run(f"SET max_query_size = {MAX_QUERY_BYTES}", "CSV")  # a session setting: it stays

    def _run(self, sql: str, fmt: str = "JSONEachRow") -> str:
        return str(self._session.query(sql, fmt).data())  # type: ignore[no-untyped-call]

    async def execute(self, sql: str) -> None:
        async with self._lock:
            await asyncio.to_thread(self._run, sql, "CSV")

    async def query(self, sql: str) -> list[dict[str, Any]]:
        async with self._lock:
            text = await asyncio.to_thread(self._run, sql)
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]

    async def insert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        body = b"\n".join(orjson.dumps(dict(r)) for r in rows).decode()
        await self.execute(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}")

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._session.close)
