"""The records most recently appended to the spool, kept in memory so the sender need not read back
from disk what was written a moment ago.

The spool stays the source of truth: this is a bounded copy of its newest stretch. The sender uses it
only when it starts exactly at the spool's cursor, and reads the disk otherwise (records left by an
earlier run, or a stretch that did not fit while Kafka was away). Either way it sends records in spool
order, and the cursor decides what is acknowledged.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from services.edge.usage.spool import Position


@dataclass(frozen=True)
class _Chunk:
    start: Position  # the spool's end before the append
    end: Position  # the spool's end after it
    records: list[bytes]
    size: int


class RecentRecords:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._chunks: deque[_Chunk] = deque()
        self._size = 0

    def add(self, start: Position, records: list[bytes], end: Position) -> None:
        """Keep one append's records, if they continue the kept stretch and fit in the bound."""
        size = sum(len(r) for r in records)
        if self._chunks and self._chunks[-1].end != start:
            return  # a stretch was left out (over the bound): the disk has it, the sender reads it there
        if self._size + size > self._max_bytes:
            return
        self._chunks.append(_Chunk(start, end, records, size))
        self._size += size

    def take(self, cursor: Position, max_records: int) -> tuple[list[bytes], Position] | None:
        """Records from ``cursor`` on (whole appends, up to about ``max_records``) and the position just
        after them; None when the kept stretch does not start at ``cursor``."""
        while self._chunks and self._chunks[0].end <= cursor:
            self._size -= self._chunks.popleft().size  # acknowledged (sent from disk, or taken before)
        if not self._chunks or self._chunks[0].start != cursor:
            return None
        records: list[bytes] = []
        end = cursor
        for chunk in self._chunks:
            if records and len(records) + len(chunk.records) > max_records:
                break
            records += chunk.records
            end = chunk.end
        return records, end
