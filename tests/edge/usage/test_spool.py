"""The usage spool on a real filesystem: order, durability across restarts, torn tails, rotation,
the bound, one owner at a time, a reader and an fsync thread beside the writer, and a failed write."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from infra.stack.paths import REPO_ROOT
from services.edge.usage.spool import HEADER, Spool, SpoolLocked


def _drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while True:
        records, position = spool.read(7)
        if not records:
            return out
        out += records
        if spool.advance(position):
            spool.write_cursor()


def test_records_come_back_in_order_across_segments_and_restarts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200)
    payloads = [f"event-{i:03d}".encode() for i in range(100)]
    for i in range(0, 100, 10):
        spool.append(payloads[i:i + 10])
    assert len(list(tmp_path.glob("*.seg"))) > 3  # rotated
    first, position = spool.read(25)
    assert first == payloads[:25]
    assert spool.advance(position)  # into another segment: due at once
    spool.close()

    reopened = Spool(tmp_path, segment_bytes=200)  # a restart: the cursor survives
    assert _drain(reopened) == payloads[25:]
    assert reopened.empty() and reopened.pending_bytes() == 0
    assert len(list(tmp_path.glob("*.seg"))) == 1  # acknowledged segments are deleted
    reopened.append([b"after"])
    assert _drain(reopened) == [b"after"]
    reopened.close()


def test_unacknowledged_records_are_read_again_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([b"a", b"b", b"c"])
    records, _ = spool.read(10)  # sent, but the ack never came (the process died)
    assert records == [b"a", b"b", b"c"]
    spool.close()
    again = Spool(tmp_path)
    assert _drain(again) == [b"a", b"b", b"c"]
    again.close()


def test_a_torn_tail_is_cut_and_appends_continue(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([b"whole-1", b"whole-2"])
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    with open(segment, "ab") as f:  # a write cut short: a header promising more than was written
        f.write(HEADER.pack(100, 0) + b"partial")
    repaired = Spool(tmp_path)
    repaired.append([b"whole-3"])
    assert _drain(repaired) == [b"whole-1", b"whole-2", b"whole-3"]
    repaired.close()


def test_a_corrupted_record_stops_the_read_at_the_last_good_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([b"good"])
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = segment.read_bytes()
    segment.write_bytes(data + HEADER.pack(3, 12345) + b"bad")  # wrong checksum
    reopened = Spool(tmp_path)
    assert _drain(reopened) == [b"good"]
    reopened.close()


def test_pending_bytes_track_what_is_not_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([b"x" * 1000] * 5)
    assert spool.pending_bytes() == 5 * (1000 + HEADER.size)
    records, position = spool.read(2)
    assert len(records) == 2
    assert not spool.advance(position)  # same segment, within the second: kept in memory
    assert spool.pending_bytes() == 3 * (1000 + HEADER.size)
    spool.close()


def test_two_processes_never_share_a_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()  # free again once the owner is gone


def _crash(spool: Spool) -> None:
    """The process dies: its files close (the lock goes with them), nothing else runs."""
    os.close(spool._tail)
    spool._owner.close()


def test_a_crash_resends_only_what_was_acknowledged_since_the_cursor_was_last_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path, cursor_sync_seconds=3600)
    spool.append([b"a", b"b"])
    records, position = spool.read(10)
    assert not spool.advance(position)  # acknowledged: the cursor moves in memory only (not yet due)
    assert records == [b"a", b"b"] and spool.empty()
    _crash(spool)
    again = Spool(tmp_path, cursor_sync_seconds=0)
    assert _drain(again) == [b"a", b"b"]  # re-sent after the crash: consumers dedupe by request id
    again.append([b"c"])
    records, position = again.read(10)
    assert again.advance(position)  # due at once
    again.write_cursor()
    _crash(again)
    last = Spool(tmp_path)
    assert last.empty() and _drain(last) == []
    last.close()


def test_what_was_appended_survives_the_process_dying_before_any_fsync(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    end = spool.append([b"a", b"b"])
    assert end == spool.end and spool.synced < end  # written, not yet fsync'd
    _crash(spool)
    again = Spool(tmp_path)
    assert _drain(again) == [b"a", b"b"]
    again.close()


def test_the_writer_rotates_while_a_reader_and_the_fsync_thread_run_beside_it(tmp_path: Path) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    spool = Spool(tmp_path, segment_bytes=300, cursor_sync_seconds=0)
    payloads = [f"event-{i:05d}".encode() for i in range(3000)]
    done = threading.Event()
    read: list[bytes] = []
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            while not done.is_set() or not spool.empty():
                records, position = spool.read(7)
                read.extend(records)
                if spool.advance(position):
                    spool.write_cursor()
        except BaseException as exc:
            failures.append(exc)

    def syncer() -> None:
        try:
            while not done.is_set():
                spool.sync()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=reader), threading.Thread(target=syncer)]
    for thread in threads:
        thread.start()
    for i in range(0, len(payloads), 3):
        spool.append(payloads[i:i + 3])
    done.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert read == payloads  # every record once, in order, across about 200 rotations
    spool.close()
    assert spool.synced == spool.end
    assert len(list(tmp_path.glob("*.seg"))) <= 2  # the read segments were deleted
    assert len(os.listdir("/proc/self/fd")) == fds_before  # every rotated-out segment was closed


_FAILED_WRITE = """
import resource, signal, sys
from pathlib import Path
from services.edge.usage.spool import Spool
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails (EFBIG) instead of killing us
spool = Spool(Path(sys.argv[1]))
end = spool.append([b"before"])
resource.setrlimit(resource.RLIMIT_FSIZE, (end.offset + 20, resource.RLIM_INFINITY))
try:
    spool.append([b"x" * 100])  # the first 20 bytes are written, then the disk is "full"
except OSError as exc:
    print("refused", exc.errno)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
spool.append([b"after"])
spool.close()
"""


def test_a_write_the_disk_refuses_halfway_leaves_no_torn_record_behind(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FAILED_WRITE, str(tmp_path)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", str(errno.EFBIG)]
    spool = Spool(tmp_path)
    assert _drain(spool) == [b"before", b"after"]  # the refused record is gone, nothing after it lost
    spool.close()
