"""``tollgate.billing.v1.StripeWebhooks`` on billing's gRPC server: the edge's forwarded delivery →
``webhooks.deliver``. The channel is internal; authenticity is still the signature, checked here."""

from __future__ import annotations

import asyncpg
import grpc
import structlog

from services.billing.stripe.client import StripeBilling
from services.billing.stripe.webhooks import deliver
from services.common.outbox import Flusher
from tollgate.billing.v1 import webhooks_pb2, webhooks_pb2_grpc

Context = grpc.aio.ServicerContext[webhooks_pb2.DeliverRequest, webhooks_pb2.DeliverResponse]


class StripeWebhooksService(webhooks_pb2_grpc.StripeWebhooksServicer):
    def __init__(self, stripe_ctx: StripeBilling, pool: asyncpg.Pool, outbox: Flusher,
                 flush_timeout: float) -> None:
        self._stripe = stripe_ctx
        self._pool = pool
        self._outbox = outbox
        self._flush_timeout = flush_timeout

    async def Deliver(  # noqa: N802 - gRPC method name
        self, request: webhooks_pb2.DeliverRequest, context: Context
    ) -> webhooks_pb2.DeliverResponse:
        structlog.contextvars.bind_contextvars(request_id=request.request_id)
        answer = await deliver(self._stripe, self._pool, self._outbox, self._flush_timeout,
                               request.payload, request.signature)
        return webhooks_pb2.DeliverResponse(status=answer.status, message=answer.message)


def add_to_server(service: StripeWebhooksService, server: grpc.aio.Server) -> None:
    webhooks_pb2_grpc.add_StripeWebhooksServicer_to_server(service, server)
