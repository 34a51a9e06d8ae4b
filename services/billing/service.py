"""Billing's process: the PostgreSQL pool, the Kafka producer, the ManagementService gRPC server, the
keys.v1 outbox publisher, the requests.v1 ``last_used_at`` consumer, Stripe's webhook servicer and
scheduled reconciliation, and the ops endpoints.

Start-up never waits for Kafka (the outbox holds every change until it can be published, and
/readyz says not-ready meanwhile). On SIGTERM: gRPC stops taking calls and lets in-flight ones finish,
then the outbox makes one last pass, the consumer finishes (or rewinds) its batch, and the
clients close.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2

from services.billing.last_used import GROUP_ID, LastUsedWriter, process_requests
from services.billing.ledger.runtime import LedgerSide
from services.billing.manage.context import Deps
from services.billing.manage.dispatch import dispatch
from services.billing.outbox import OutboxPublisher
from services.billing.settings import BillingSettings
from services.billing.statements.close import run_closer
from services.billing.statements.context import StatementsDeps
from services.billing.statements.usage_client import MeteringUsage
from services.billing.stripe.client import StripeBilling, StripeConfig, StripeGateway
from services.billing.stripe.reconcile import run_periodically
from services.billing.stripe.servicer import StripeWebhooksService, add_to_server
from services.common.kafka.batch_consumer import BatchConsumer
from services.common.kafka.producer import EventProducer
from services.common.lifecycle import serve_http
from services.common.manage.grpc_server import ManagementService, build_server
from services.common.ops import ops_app
from services.common.pg import create_pool, pg_ready
from services.common.retry import keep_trying


def stripe_of(settings: BillingSettings) -> StripeBilling:
    """Stripe as configured: without an API key the gateway is None and Stripe routes answer 503."""
    secret = settings.stripe_webhook_secret
    config = StripeConfig(
        webhook_secret=secret.get_secret_value() if secret is not None else None,
        webhook_tolerance_seconds=settings.stripe_webhook_tolerance_seconds,
        currency=settings.stripe_currency, past_due_holds=settings.stripe_past_due_holds,
        reconcile_lookback_hours=settings.reconcile_lookback_hours,
    )
    key = settings.stripe_api_key
    gateway = None if key is None else StripeGateway(
        key.get_secret_value(), settings.stripe_api_base, settings.stripe_timeout_seconds, config
    )
    return StripeBilling(gateway, config)


async def main(settings: BillingSettings, stop: asyncio.Event) -> None:
    pool = await create_pool(settings.database_url, settings.db_pool_size)
    producer = EventProducer(settings, client_id="billing")
    consumer = BatchConsumer(
        settings=settings, topics=["requests.v1"], group_id=GROUP_ID, processor=process_requests,
        writer=LastUsedWriter(pool), dead_letter_topic="requests.v1.dlq", producer=producer,
    )
    outbox = OutboxPublisher(pool, producer, settings.outbox_interval_seconds)
    outbox_stop = asyncio.Event()  # set only once gRPC has drained: in-flight calls still flush
    stripe_ctx = stripe_of(settings)
    metering_channel = grpc.aio.insecure_channel(settings.metering_address)
    statements = StatementsDeps(MeteringUsage(metering_channel, settings.metering_timeout_seconds),
                                timedelta(hours=settings.statements_close_grace_hours))
    ledger = LedgerSide(settings, pool, producer)
    deps = Deps(pool, outbox, settings.key_hash_secret.get_secret_value(), settings.publish_wait_seconds,
                stripe=stripe_ctx, statements=statements, wallets=ledger.wallets, mirror=ledger.mirror)
    health = health_aio.HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    server = build_server(ManagementService(deps, dispatch), health)
    add_to_server(StripeWebhooksService(stripe_ctx, pool, outbox, settings.publish_wait_seconds), server)
    server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()

    async def start_kafka() -> None:
        if not producer.started:
            await producer.start()
        await consumer.start()

    async def consume() -> None:
        if await keep_trying(start_kafka, "kafka", stop):
            await consumer.run(stop)

    async def kafka_ready() -> bool:
        return producer.started and await producer.ping()

    tasks = [
        asyncio.create_task(consume(), name="last-used-consumer"),
        asyncio.create_task(outbox.run(outbox_stop), name="keys-outbox"),
        *ledger.tasks(stop),
        asyncio.create_task(run_closer(pool, statements.metering, settings.statements_close_interval_seconds,
                                       statements.grace, stop), name="statements-close"),
        asyncio.create_task(run_periodically(stripe_ctx, pool, outbox, settings.publish_wait_seconds,
                                             settings.reconcile_interval_seconds, stop),
                            name="stripe-reconcile"),
    ]
    app = ops_app("billing", {"postgres": lambda: pg_ready(pool), "kafka": kafka_ready})
    try:
        await serve_http(app, settings.http_host, settings.http_port, stop, settings.shutdown_grace_seconds)
    finally:
        stop.set()
        await health.enter_graceful_shutdown()
        await server.stop(grace=settings.shutdown_grace_seconds)  # in-flight calls finish (and flush)
        outbox_stop.set()
        await asyncio.gather(*tasks)  # the outbox's last pass; the consumer's batch in hand
        await consumer.stop()
        await ledger.close()
        await producer.stop()
        await metering_channel.close(None)
        await pool.close()
