"""The usage store behind one small interface, with two drivers and the same SQL:

- ``ChdbStore``: the embedded ClickHouse engine (chDB), used by ``make run`` and every test here.
- ``ClickHouseServerStore``: a ClickHouse server through clickhouse-connect, for production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Row = Mapping[str, Any]


# The consumer's INSERT carries its batch inside the statement (``format()``): megabytes, not the 256 KiB
# ClickHouse allows a query by default.
MAX_QUERY_BYTES = 256 * 1024 * 1024


class UsageStore(Protocol):
    async def execute(self, sql: str) -> None:
        """A statement of up to ``MAX_QUERY_BYTES``."""
        ...

    async def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows as dicts. 64-bit integers may come back as strings (chDB's JSON output quotes them):
        callers convert with ``int()``."""
        ...

    async def insert(self, table: str, rows: Sequence[Row]) -> None: ...

    async def close(self) -> None: ...
