"""A durable, ordered, bounded on-disk queue of records: the edge's write-ahead log of usage events.

Layout: a directory of segment files ``<seq>.seg`` (appended to, rotated at ``segment_bytes``) and a
``cursor`` file naming the first record not yet acknowledged by Kafka. A record on disk is
``length (4 bytes, big endian) | crc32 (4 bytes) | payload``; a torn tail (the machine died inside a
write that was never fsync'd) fails its length or CRC check and is cut off at start-up.

Two kinds of durability, paid for separately:

- ``append`` is one ``write`` into the page cache, made on the caller's thread (the event loop): cheap,
  and from then on the record survives the *process* dying (OOM kill, SIGKILL, a crash).
- ``sync`` fsyncs what was appended (group commit): the record then survives the *machine* dying.
  The emitter calls it from a worker thread every few ms, so a power loss can cost at most that window
  of events not yet on Kafka. Nothing waits for it: sending to Kafka before the fsync is safe, because
  an event that reached Kafka no longer needs the spool.

``advance`` moves the cursor in memory; ``write_cursor`` puts it on disk (write, fsync, rename) and
deletes the segments wholly behind it, which the emitter does at most once a second, on entering a new
segment, and on ``close``. A crash re-sends what was acknowledged since the last write: harmless,
because every consumer of usage.v1 is idempotent by request id.

Threads: ``append``, ``advance``, ``end``, ``empty`` belong to the one writer (the event loop);
``sync``, ``read``, ``write_cursor`` and ``pending_bytes`` may run in worker threads. ``_lock`` guards
only the hand-over of rotated files, so the writer never waits for an fsync. A reader that meets a
record still being written stops at it (its length or CRC fails) and finds it whole next time.
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


def frame(payloads: list[bytes]) -> bytes:
    """``payloads`` as they are laid out on disk, one after another."""
    return b"".join(HEADER.pack(len(p), zlib.crc32(p)) + p for p in payloads)


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
        self._sync_lock = threading.Lock()  # one fsync pass at a time
        self._cursor_lock = threading.Lock()  # one cursor write at a time
        self.cursor = self._read_cursor()
        segments = self._segments()
        if not segments:
            segments = [max(self.cursor.segment, 1)]
            (self.dir / self._name(segments[0])).touch()
        self._tail_segment = segments[-1]
        size = self._repair_tail()
        self._tail = os.open(self.dir / self._name(self._tail_segment), os.O_WRONLY | os.O_APPEND)
        self._tail_size = size
        self._retired: list[int] = []  # rotated-out segment fds, fsync'd and closed by the next sync
        if self.cursor.segment < segments[0]:
            self.cursor = Position(segments[0], 0)
        self.end = Position(self._tail_segment, size)  # just after the last record appended
        self.synced = self.end
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

    def _repair_tail(self) -> int:
        """Cut the last segment at the end of its last whole, checksummed record; its new size."""
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
        return good

    def append(self, payloads: list[bytes]) -> Position:
        """Write ``payloads`` in order (one ``write``, not fsync'd); the position just after them.

        On an error (a full disk) the segment is cut back to where it was, so no torn record is left
        in the middle of it, and the error is raised: nothing of this call was appended.
        """
        if not payloads:
            return self.end
        data = memoryview(frame(payloads))
        written = 0
        try:
            while written < len(data):
                written += os.write(self._tail, data[written:])
        except OSError:
            if written:
                os.ftruncate(self._tail, self._tail_size)
            raise
        self._tail_size += written
        self.end = Position(self._tail_segment, self._tail_size)
        if self._tail_size >= self.segment_bytes:
            self._rotate()
        return self.end

    def _rotate(self) -> None:
        path = self.dir / self._name(self._tail_segment + 1)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        with self._lock:
            self._retired.append(self._tail)
            self._tail, self._tail_segment, self._tail_size = fd, self._tail_segment + 1, 0

    def sync(self) -> None:
        """fsync everything appended so far (blocking: run it in a worker thread)."""
        with self._sync_lock:
            with self._lock:
                retired, self._retired = self._retired, []
                tail, end = self._tail, self.end
            for fd in retired:
                os.fsync(fd)
                os.close(fd)
            if retired:
                _fsync_dir(self.dir)  # the new segments' names
            os.fsync(tail)
            self.synced = max(self.synced, end)

    def read(self, max_records: int, max_bytes: int = 4 * 1024 * 1024) -> tuple[list[bytes], Position]:
        """Up to ``max_records`` records from the cursor on, and the position just after them."""
        records: list[bytes] = []
        position, size = self.cursor, 0
        while len(records) < max_records and size < max_bytes:
            tail = self._tail_segment  # before reading: a segment that was the tail may still grow
            if position.segment > tail:
                break
            try:
                with open(self.dir / self._name(position.segment), "rb") as f:
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
            if position.segment == tail or len(records) >= max_records or size >= max_bytes:
                break
            position = Position(position.segment + 1, 0)
        return records, position

    def advance(self, position: Position) -> bool:
        """Everything before ``position`` is acknowledged: move the cursor there in memory. True when
        the cursor is due to be written (``write_cursor``)."""
        if position <= self.cursor:
            return False
        self.cursor = position
        due = time.monotonic() - self._written_at >= self.cursor_sync_seconds
        return due or position.segment != self._written.segment

    def write_cursor(self) -> None:
        """Put the cursor on disk and delete the segments behind it (blocking: a worker thread)."""
        with self._cursor_lock:
            cursor = self.cursor
            if cursor == self._written:
                return
            tmp = self.dir / "cursor.tmp"
            with open(tmp, "w") as f:
                f.write(f"{cursor.segment} {cursor.offset}\n")
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.dir / "cursor")
            _fsync_dir(self.dir)
            self._written, self._written_at = cursor, time.monotonic()
            for seq in self._segments():
                if seq < cursor.segment:
                    (self.dir / self._name(seq)).unlink(missing_ok=True)

    def pending_bytes(self) -> int:
        """Bytes not yet acknowledged (the bound the edge alarms and refuses on)."""
        cursor, total = self.cursor, 0
        for seq in self._segments():
            if seq < cursor.segment:
                continue
            try:
                size = (self.dir / self._name(seq)).stat().st_size
            except FileNotFoundError:
                continue  # deleted behind a cursor written meanwhile
            total += size - (cursor.offset if seq == cursor.segment else 0)
        return total

    def empty(self) -> bool:
        return self.cursor >= self.end

    def close(self) -> None:
        """fsync, write the cursor, release the directory."""
        self.sync()
        self.write_cursor()
        os.close(self._tail)
        self._owner.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
