"""Killing the metering process (SIGKILL, no chance to clean up) while it drains usage.v1, again and
again, loses nothing and doubles nothing — in the raw rows, the rollups and the usage API.

The process is the real one (``python -m services.metering``) with its own chDB directory; it is killed
three times at random moments (polling, parsing, mid-insert, between an insert and its commit) and
restarted each time. Before the first start, the test itself writes the first events into the store
without committing their offsets — exactly what a kill between an insert and its commit leaves behind —
so that case is certainly exercised, not only when a random kill happens to land in that gap. Between
kills the test opens the chDB directory itself (one process per directory; the killed one is gone).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import orjson
import pytest

from infra.stack.paths import REPO_ROOT
from infra.stack.ports import free_port
from services.common.money import format_micros
from services.metering.settings import MeteringSettings
from services.metering.store.chdb_store import ChdbStore
from services.metering.writer import UsageWriter
from tests.kafka_helpers import eventually
from tests.metering.factory import spread, totals
from tests.metering.kafka import committed_total, metering_settings, produce
from tests.metering.test_writer import rows_of, sums
from tollgate.manage.v1 import manage_pb2, manage_pb2_grpc

pytestmark = pytest.mark.slow
EVENTS = 6_000
LEFT_BEHIND = 300  # written by "an earlier run" that died before committing them
KILLS = 3


def environment(settings: MeteringSettings, chdb: Path, grpc_port: int) -> dict[str, str]:
    """Small batches: many inserts and commits per second, so a random kill can land anywhere."""
    return {
        **os.environ, "PYTHONPATH": str(REPO_ROOT), "TOLLGATE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TOLLGATE_TOPIC_PREFIX": settings.topic_prefix, "TOLLGATE_LOG_LEVEL": "warning",
        "METERING_CHDB_PATH": str(chdb), "METERING_HTTP_PORT": str(free_port()),
        "METERING_GRPC_PORT": str(grpc_port), "METERING_BATCH_MAX_RECORDS": "20",
        "METERING_BATCH_MAX_WAIT_SECONDS": "0.2",
    }


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.metering", *args], cwd=REPO_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def note_stored(chdb: Path) -> int:
    """Rows stored; every request id seen for the first time is noted with the newest ``ingested_at`` so
    far, so that the end can tell whether a stored row was ever inserted again (ReplacingMergeTree would
    hide a second copy once it merges, keeping the newer one — whose ingested_at then gives it away)."""
    store = ChdbStore(str(chdb))
    try:
        await store.execute("CREATE TABLE IF NOT EXISTS test_seen (request_id String, watermark DateTime64(3, 'UTC')) "
                            "ENGINE = MergeTree ORDER BY request_id")
        await store.execute("INSERT INTO test_seen SELECT request_id, (SELECT max(ingested_at) FROM usage_raw) "
                            "FROM usage_raw WHERE request_id NOT IN (SELECT request_id FROM test_seen)")
        return int((await store.query("SELECT count() AS n FROM usage_raw"))[0]["n"])
    finally:
        await store.close()


async def leave_behind(chdb: Path, events: list[dict[str, object]]) -> None:
    store = ChdbStore(str(chdb))
    try:
        await UsageWriter(store).write(rows_of(events))
    finally:
        await store.close()


async def test_sigkill_mid_batch_and_restart_loses_nothing_and_doubles_nothing(bootstrap: str, tmp_path: Path) -> None:
    settings = await metering_settings(bootstrap)
    chdb, log, port = tmp_path / "chdb", tmp_path / "metering.log", free_port()
    env = environment(settings, chdb, port)
    assert start(env, log, "migrate").wait(timeout=60) == 0
    events = spread(EVENTS)  # distinct ids: stored rows and committed offsets can be compared
    produced = await produce(settings, events)
    await leave_behind(chdb, events[:LEFT_BEHIND])
    assert await note_stored(chdb) == LEFT_BEHIND and await committed_total(settings) == 0
    rng = random.Random()
    for _ in range(KILLS):
        before = await committed_total(settings)
        proc = start(env, log)
        try:
            await eventually(lambda b=before: _committed_beyond(settings, b), timeout=60, what="progress")
            await asyncio.sleep(rng.uniform(0.0, 0.4))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        committed, stored = await committed_total(settings), await note_stored(chdb)
        assert stored >= committed, "a committed record is missing from the store"

    proc = start(env, log)  # the last run drains the rest, then answers the usage API
    try:
        await eventually(lambda: _committed_beyond(settings, produced - 1), timeout=120, what="all committed")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await manage_pb2_grpc.ManagementServiceStub(channel).Call(manage_pb2.ManageRequest(
                caller=manage_pb2.Caller(admin=True), method="GET", path="/v1/manage/usage",
                query="from=2026-11-01&to=2026-11-05"))
        answer = orjson.loads(reply.body)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    expected = totals(events)
    assert answer["totals"]["requests"] == EVENTS
    assert answer["totals"]["cost"] == format_micros(expected["cost_micros"])
    store = ChdbStore(str(chdb))
    try:
        assert await sums(store) == expected == await sums(store, "rollup")
        dupes = await store.query("SELECT count() - uniqExact(request_id) AS d FROM usage_raw")
        assert int(dupes[0]["d"]) == 0
        again = await store.query("SELECT count() AS n FROM usage_raw AS u INNER JOIN test_seen AS s "
                                  "ON u.request_id = s.request_id WHERE u.ingested_at > s.watermark")
        assert int(again[0]["n"]) == 0, "a row stored before a kill was inserted again after it"
    finally:
        await store.close()


async def _committed_beyond(settings: MeteringSettings, offset_total: int) -> bool:
    return await committed_total(settings) > offset_total
