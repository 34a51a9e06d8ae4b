"""Writes a processed batch into the usage store in one insert (the consumer commits after it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.metering.store import UsageStore


class UsageWriter:
    def __init__(self, store: UsageStore, table: str = "usage_raw") -> None:
        self._store = store
        self._table = table

    async def write(self, rows: Sequence[dict[str, Any]]) -> None:
        await self._store.insert(self._table, rows)
