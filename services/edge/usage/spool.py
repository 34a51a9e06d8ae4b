"""A durable, ordered, bounded on-disk queue of records: the edge's write-ahead log of usage events.

Layout: a directory of segment files ``<seq>.seg`` (appended to, rotated at ``segment_bytes``) and a
``cursor`` file naming the first record not yet acknowledged by Kafka. A record on disk is
``length (4 bytes, big endian) | crc32 (4 bytes) | payload``; a torn tail (the process died inside a
write that was never fsync'd, hence never acknowledged) fails its length or CRC check and is cut off
at start-up. ``append`` fsyncs once per call, so callers batch.

``advance`` moves the cursor in memory and writes it to disk (write, fsync, rename) at most every
``cursor_sync_seconds``, when it enters a new segment, and on ``close``; segments wholly behind the
written cursor are deleted then. A crash therefore re-sends what was acknowledged since the last
write (at most that interval's events): harmless, because every consumer of usage.v1 is idempotent
by request id, and it saves two fsyncs and a rename per batch, which were most of the spool's CPU.

Blocking file I/O: callers run these methods in worker threads; one lock orders the writer and the
reader, so a reader never walks past a segment the writer is still finishing.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

HEADER = struct.Struct(">II")
MAX_RECORD = 16 * 1024 * 1024


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


class SpoolLocked(RuntimeError):
    """Another process holds this spool: two edges must never share one (each has its own directory)."""


class Spool:
    def __init__(
        self, directory: Path, segment_bytes: int = 64 * 1024 * 1024, cursor_sync_seconds: float = 1.0
    ) -> None:
        self.dir = directory
        self.segment_bytes = segment_bytes
        self.cursor_sync_seconds = cursor_sync_seconds
        self.dir.mkdir(parents=True, exist_ok=True)
        self._owner = open(self.dir / "lock", "a")
        try:
            fcntl.flock(self._owner.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._owner.close()
            raise SpoolLocked(f"the usage spool {directory} is in use by another process") from None
        self._lock = threading.Lock()
        self.cursor = self._read_cursor()
        segments = self._segments()
        if not segments:
            segments = [max(self.cursor.segment, 1)]
            (self.dir / self._name(segments[0])).touch()
        self._tail_segment = segments[-1]
        self._repair_tail()
        self._tail = open(self.dir / self._name(self._tail_segment), "ab")
        if self.cursor.segment < segments[0]:
            self.cursor = Position(segments[0], 0)
        self._written = self.cursor  # the cursor as on disk
        self._written_at = time.monotonic()

    @staticmethod
    def _name(seq: int) -> str:
        return f"{seq:012d}.seg"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.seg"))

    def _read_cursor(self) -> Position:
        try:
            segment, offset = (self.dir / "cursor").read_text().split()
            return Position(int(segment), int(offset))
        except (FileNotFoundError, ValueError):
            return Position(0, 0)

    def _repair_tail(self) -> None:
        """Cut the last segment at the end of its last whole, checksummed record."""
        path = self.dir / self._name(self._tail_segment)
        good = 0
        with open(path, "rb") as f:
            while True:
                header = f.read(HEADER.size)
                if len(header) < HEADER.size:
                    break
                length, crc = HEADER.unpack(header)
                payload = f.read(length) if length <= MAX_RECORD else b""
                if len(payload) != length or zlib.crc32(payload) != crc:
                    break
                good = f.tell()
        if good != path.stat().st_size:
            with open(path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())

    def append(self, payloads: list[bytes]) -> None:
        """Write and fsync ``payloads`` in order; durable when this returns."""
        if not payloads:
            return
        data = b"".join(HEADER.pack(len(p), zlib.crc32(p)) + p for p in payloads)
        with self._lock:
            self._tail.write(data)
            self._tail.flush()
            os.fsync(self._tail.fileno())
            if self._tail.tell() >= self.segment_bytes:
                self._rotate()

    def _rotate(self) -> None:
        self._tail.close()
        self._tail_segment += 1
        self._tail = open(self.dir / self._name(self._tail_segment), "ab")
        _fsync_dir(self.dir)

    def read(self, max_records: int, max_bytes: int = 4 * 1024 * 1024) -> tuple[list[bytes], Position]:
        """Up to ``max_records`` records from the cursor on, and the position just after them."""
        with self._lock:
            return self._read(max_records, max_bytes)

    def _read(self, max_records: int, max_bytes: int) -> tuple[list[bytes], Position]:
        records: list[bytes] = []
        position, size = self.cursor, 0
        while len(records) < max_records and size < max_bytes and position.segment <= self._tail_segment:
            path = self.dir / self._name(position.segment)
            try:
                with open(path, "rb") as f:
                    f.seek(position.offset)
                    while len(records) < max_records and size < max_bytes:
                        header = f.read(HEADER.size)
                        if len(header) < HEADER.size:
                            break
                        length, crc = HEADER.unpack(header)
                        payload = f.read(length)
                        if len(payload) != length or zlib.crc32(payload) != crc:
                            break  # not yet fully written (the writer is appending now)
                        records.append(payload)
                        size += length
                        position = Position(position.segment, f.tell())
            except FileNotFoundError:
                pass
            if position.segment == self._tail_segment or len(records) >= max_records or size >= max_bytes:
                break
            position = Position(position.segment + 1, 0)
        return records, position

    def advance(self, position: Position) -> None:
        """Everything before ``position`` is acknowledged: move the cursor there, durably."""
        with self._lock:
            self._advance(position)

    def _advance(self, position: Position) -> None:
        if position <= self.cursor:
            return
        self.cursor = position
        due = time.monotonic() - self._written_at >= self.cursor_sync_seconds
        if due or position.segment != self._written.segment:
            self._write_cursor()

    def _write_cursor(self) -> None:
        if self.cursor == self._written:
            return
        tmp = self.dir / "cursor.tmp"
        with open(tmp, "w") as f:
            f.write(f"{self.cursor.segment} {self.cursor.offset}\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.dir / "cursor")
        _fsync_dir(self.dir)
        self._written, self._written_at = self.cursor, time.monotonic()
        for seq in self._segments():
            if seq < self.cursor.segment:
                (self.dir / self._name(seq)).unlink(missing_ok=True)

    def pending_bytes(self) -> int:
        """Bytes not yet acknowledged (the bound the edge alarms and refuses on)."""
        with self._lock:
            return self._pending_bytes()

    def _pending_bytes(self) -> int:
        total = 0
        for seq in self._segments():
            if seq < self.cursor.segment:
                continue
            size = (self.dir / self._name(seq)).stat().st_size
            total += size - (self.cursor.offset if seq == self.cursor.segment else 0)
        return total

    def empty(self) -> bool:
        with self._lock:
            return self.cursor.segment == self._tail_segment and self.cursor.offset >= self._tail.tell()

    def close(self) -> None:
        with self._lock:
            self._write_cursor()
        self._tail.close()
        self._owner.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
