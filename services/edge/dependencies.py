"""The edge's live connections and snapshots, created once per process and passed down."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.events.catalog import CatalogEventV1
from services.common.events.keys import KeyEventV1
from services.common.frame_batcher import CHANNEL_OPTIONS
from services.common.kafka.producer import EventProducer
from services.common.kafka.snapshot import CompactedSnapshot
from services.common.ops import ReadinessCheck
from services.common.retry import keep_trying
from services.edge.admission.count_limit import CountLimit
from services.edge.admission.limiter import Admission, OutagePolicy
from services.edge.auth import KeyIndex
from services.edge.catalog_view import CatalogView
from services.edge.request_events import RequestEvents
from services.edge.router_client import RouterClient
from services.edge.settings import EdgeSettings
from services.edge.usage.emitter import UsageEmitter
from services.edge.usage.spool import Spool
from tollgate.router.v1 import router_pb2_grpc

EVENT_LINGER_MS = 25

# The router is on the request path: after it restarts, reconnect within a second instead of gRPC's
# default backoff (1 s growing to 120 s), during which every request would be refused with a 503.
ROUTER_CHANNEL_OPTIONS = (
    *CHANNEL_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
# Several sessions: each new stream goes to the next connected router address (round robin).
ROUND_ROBIN = ("grpc.service_config", '{"loadBalancingConfig": [{"round_robin": {}}]}')


def router_channel_options(sessions: int) -> tuple[tuple[str, Any], ...]:
    """gRPC's default (pick first) sends every stream to the first router address that answers; with
    several sessions, round robin places each new one on the next address instead."""
    return (*ROUTER_CHANNEL_OPTIONS, ROUND_ROBIN) if sessions > 1 else ROUTER_CHANNEL_OPTIONS


def admission_pool(settings: EdgeSettings) -> redis.BlockingConnectionPool:
    """A bounded pool that makes a burst wait for a connection (up to the admission timeout) rather
    than fail: hundreds of concurrent requests share a few dozen connections, one script each."""
    return redis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_seconds, socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )


@dataclass
class EdgeDeps:
    settings: EdgeSettings
    redis: redis.Redis
    producer: EventProducer
    keys: CompactedSnapshot[KeyEventV1]
    catalog: CompactedSnapshot[CatalogEventV1]
    router_channel: grpc.aio.Channel
    router: RouterClient  # on router_channel, built once (a stub per call costs)
    key_index: KeyIndex
    catalog_view: CatalogView
    admission: Admission
    count_limit: CountLimit
    request_events: RequestEvents
    usage: UsageEmitter
    billing_channel: grpc.aio.Channel
    metering_channel: grpc.aio.Channel
    catalog_channel: grpc.aio.Channel

    @classmethod
    def create(cls, settings: EdgeSettings) -> EdgeDeps:
        index = KeyIndex(settings.key_hash_secret.get_secret_value())
        view = CatalogView()
        client = redis.Redis(connection_pool=admission_pool(settings))
        # usage.v1 and requests.v1 leave off the request path (usage through the spool), so a longer
        # linger only delays their arrival, and it fills each produce request: less CPU per request
        producer = EventProducer(settings, client_id=settings.instance_id, linger_ms=EVENT_LINGER_MS)
        router_channel = grpc.aio.insecure_channel(
            settings.router_address, options=router_channel_options(settings.router_sessions)
        )
        admission = Admission(
            client, settings.redis_prefix, settings.lease_ttl_seconds,
            OutagePolicy(settings.redis_down_rate_limits, settings.redis_down_budgets),
            max_request_seconds=settings.router_timeout_seconds + 60,
            # two connections kept for settlements and lease renewals
            checks_at_once=settings.redis_max_connections - 2, queue_seconds=settings.redis_queue_seconds,
        )
        return cls(
            settings=settings,
            redis=client,
            producer=producer,
            keys=CompactedSnapshot(settings, "keys.v1", KeyEventV1.from_bytes, on_change=index.apply),
            catalog=CompactedSnapshot(
                settings, "catalog.v1", CatalogEventV1.from_bytes, on_change=view.apply
            ),
            router_channel=router_channel,
            router=RouterClient(
                router_pb2_grpc.RouterServiceStub(router_channel), settings.router_session,
                sessions=settings.router_sessions, rehome_seconds=settings.router_session_rehome_seconds,
            ),
            key_index=index,
            catalog_view=view,
            admission=admission,
            count_limit=CountLimit(
                client, settings.redis_prefix, settings.count_tokens_per_minute,
                outage=settings.redis_down_rate_limits,
            ),
            request_events=RequestEvents(producer),
            usage=UsageEmitter(
                producer, Spool(Path(settings.spool_root) / settings.instance_id), settings.spool_max_bytes,
                fsync_seconds=settings.spool_fsync_seconds,
            ),
            billing_channel=grpc.aio.insecure_channel(settings.billing_address),
            metering_channel=grpc.aio.insecure_channel(settings.metering_address),
            catalog_channel=grpc.aio.insecure_channel(settings.catalog_address),
        )

    async def connect(self, stop: asyncio.Event) -> None:
        """Kafka-side clients, retried in the background until they connect."""
        await keep_trying(self.producer.start, "kafka producer", stop)
        await keep_trying(self.keys.start, "keys.v1 snapshot", stop)
        await keep_trying(self.catalog.start, "catalog.v1 snapshot", stop)

    def readiness(self) -> dict[str, ReadinessCheck]:
        async def redis_ok() -> bool:
            return bool(await self.redis.ping())

        async def kafka_ok() -> bool:
            return self.producer.started and await self.producer.ping()

        async def keys_ok() -> bool:
            return self.keys.ready.is_set()

        async def catalog_ok() -> bool:
            return self.catalog.ready.is_set()

        async def router_ok() -> bool:
            stub = health_pb2_grpc.HealthStub(self.router_channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

        return {
            "redis": redis_ok,
            "kafka": kafka_ok,
            "keys_snapshot": keys_ok,
            "catalog_snapshot": catalog_ok,
            "router": router_ok,
        }

    async def close(self) -> None:
        await self.admission.drain()
        await self.usage.stop()
        await self.request_events.stop()
        await self.keys.stop()
        await self.catalog.stop()
        await self.producer.stop()
        await self.redis.aclose(close_connection_pool=True)
        self.router.close()
        await self.router_channel.close(None)
        await self.billing_channel.close(None)
        await self.metering_channel.close(None)
        await self.catalog_channel.close(None)
