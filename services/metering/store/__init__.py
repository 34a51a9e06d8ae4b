"""The usage store behind one small interface, with two drivers and the same SQL:

- ``ChdbStore``: the embedded ClickHouse engine (chDB), used by ``make run`` and every test here.
- ``ClickHouseServerStore``: a ClickHouse server through clickhouse-connect, for production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Row = Mapping[str, Any]


class UsageStore(Protocol):
    async def execute(self, sql: str) -> None: ...

    async def query(self, sql: str) -> list[dict[str, Any]]: ...

    async def insert(self, table: str, rows: Sequence[Row]) -> None: ...

    async def close(self) -> None: ...
