"""The scheduled sync: every configured source, every ``CATALOG_SYNC_INTERVAL_SECONDS``.

Each replica runs the loop; a source that finished a run within half the interval (on any replica, or
by hand) is skipped, so N replicas do not fetch a feed N times. What a run changed is published right
after it through the outbox.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import asyncpg
import structlog

from services.catalog.sync.runner import SyncConfig, ran_recently, run_sync
from services.catalog.sync.sources import SyncSource
from services.common.outbox import Flusher

log = structlog.get_logger(__name__)


class Credentials(Protocol):
    def __call__(self, env_name: str | None) -> str | None: ...


async def run_schedule(
    pool: asyncpg.Pool, sources: tuple[SyncSource, ...], config: SyncConfig, interval: float,
    outbox: Flusher, credential: Credentials, stop: asyncio.Event,
) -> None:
    if interval <= 0 or not sources:
        return
    while not stop.is_set():
        for source in sources:
            if stop.is_set():
                break
            try:
                if await ran_recently(pool, source.name, interval / 2):
                    continue
                report = await run_sync(pool, source, config, "schedule",
                                        api_key=credential(source.credentials_env))
                if report.applied or report.held:
                    await outbox.flush(5.0)
            except Exception as exc:  # noqa: BLE001 - the database is down: try again next period
                log.warning("catalog_sync_schedule_failed", source=source.name, error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
