"""The ledger's moving parts in billing's process, wired in one place: the Redis client and the wallet
mirror, the catalog.v1 price book, the usage.v1 charge consumer and the grant-expiry loop.

Start order mirrors metering's: the charge consumer starts only once the catalog snapshot has caught
up, so no usage event is priced against a half-loaded price list. Kafka and Redis are retried until
they answer; none of this blocks the management API.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as redis
import structlog

from services.billing.ledger.charges import GROUP_ID, ChargeProcessor, ChargeWriter
from services.billing.ledger.expiry import expire_grants
from services.billing.ledger.wallets import Mirror, Wallets
from services.billing.settings import BillingSettings
from services.common.events.catalog import CatalogEventV1
from services.common.kafka.batch_consumer import BatchBounds, BatchConsumer
from services.common.kafka.producer import EventProducer
from services.common.kafka.snapshot import CompactedSnapshot
from services.common.price_book import PriceBook
from services.common.retry import keep_trying

log = structlog.get_logger(__name__)


class LedgerSide:
    def __init__(self, settings: BillingSettings, pool: asyncpg.Pool, producer: EventProducer) -> None:
        self._settings = settings
        self._pool = pool
        self.redis = redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.wallets = Wallets(self.redis, settings.redis_prefix)
        self.mirror = Mirror(
            pool, self.wallets, settings.wallet_mirror_interval_seconds, settings.wallet_full_sync_seconds,
            settings.hold_ttl_seconds,
        )
        self.prices = PriceBook()
        self.catalog = CompactedSnapshot(settings, "catalog.v1", CatalogEventV1.from_bytes, self.prices.apply)
        self.consumer = BatchConsumer(
            settings=settings, topics=["usage.v1"], group_id=GROUP_ID,
            processor=ChargeProcessor(self.prices, settings.price_wait_seconds),
            writer=ChargeWriter(pool, self.wallets), dead_letter_topic="usage.v1.dlq", producer=producer,
            bounds=BatchBounds(max_records=1000, max_wait_seconds=0.2),
        )
        self._catalog_started = False

    async def _start_catalog(self) -> None:
        if not self._catalog_started:
            await self.catalog.start()
            self._catalog_started = True

    async def charge(self, stop: asyncio.Event) -> None:
        """Follow usage.v1 into the ledger (after the price book has caught up)."""
        if not await keep_trying(self._start_catalog, "catalog snapshot", stop):
            return
        if not await self.catalog.caught_up(stop):
            return
        if await keep_trying(self.consumer.start, "charge consumer", stop):
            await self.consumer.run(stop)

    async def expire(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await expire_grants(self._pool, datetime.now(UTC))
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("grant_expiry_failed", error=type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), self._settings.grant_expiry_interval_seconds)
            except TimeoutError:
                pass

    def tasks(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self.charge(stop), name="ledger-charges"),
            asyncio.create_task(self.mirror.run(stop), name="wallet-mirror"),
            asyncio.create_task(self.expire(stop), name="grant-expiry"),
        ]

    async def ready(self) -> bool:
        return self.catalog.ready.is_set() and self.consumer.assigned()

    async def close(self) -> None:
        await self.consumer.stop()
        if self._catalog_started:
            await self.catalog.stop()
        await self.redis.aclose()
