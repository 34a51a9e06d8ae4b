"""The usage spool on a real filesystem: order, durability across restarts, torn tails, rotation,
the bound, and one owner at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.edge.usage.spool import HEADER, Spool, SpoolLocked


def _drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while True:
        records, position = spool.read(7)
        if not records:
            return out
        out += records
        spool.advance(position)


def test_records_come_back_in_order_across_segments_and_restarts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200)
    payloads = [f"event-{i:03d}".encode() for i in range(100)]
    for i in range(0, 100, 10):
        spool.append(payloads[i:i + 10])
    assert len(list(tmp_path.glob("*.seg"))) > 3  # rotated
    first, position = spool.read(25)
    assert first == payloads[:25]
    spool.advance(position)
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
    spool.advance(position)
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
    spool._tail.close()
    spool._owner.close()


def test_a_crash_resends_only_what_was_acknowledged_since_the_cursor_was_last_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path, cursor_sync_seconds=3600)
    spool.append([b"a", b"b"])
    records, position = spool.read(10)
    spool.advance(position)  # acknowledged: the cursor moves in memory only (not yet due)
    assert records == [b"a", b"b"] and spool.empty()
    _crash(spool)
    again = Spool(tmp_path, cursor_sync_seconds=0)
    assert _drain(again) == [b"a", b"b"]  # re-sent after the crash: consumers dedupe by request id
    again.append([b"c"])
    records, position = again.read(10)
    again.advance(position)  # due at once: written before advance returns
    _crash(again)
    last = Spool(tmp_path)
    assert last.empty() and _drain(last) == []
    last.close()
