"""``POST /v1/webhooks/stripe``: Stripe's webhooks, public (no API key — authenticity is the signature).

The edge holds no Stripe secret and decides nothing: it forwards the body bytes exactly as received
(the signature covers those bytes) and the ``Stripe-Signature`` header to billing's
``StripeWebhooks.Deliver``, and answers Stripe with billing's status: 2xx processed or already
processed, 400 refused (bad signature), 5xx retry later. If billing cannot be reached the answer is
503, so Stripe retries. Nothing of the body is logged.
"""

from __future__ import annotations

import grpc
import structlog
from starlette.requests import Request
from starlette.responses import Response

from services.common.errors import TollgateError
from services.edge.dependencies import EdgeDeps
from services.edge.routes.responses import error_response, json_response, read_body
from tollgate.billing.v1 import webhooks_pb2, webhooks_pb2_grpc

log = structlog.get_logger(__name__)
MAX_EVENT_BYTES = 1 << 20  # Stripe's events are a few kB; never buffer more than this


async def stripe_webhook(request: Request) -> Response:
    deps: EdgeDeps = request.app.state.deps
    request_id: str = request.scope["state"]["request_id"]
    try:
        payload = await read_body(request, min(deps.settings.max_body_bytes, MAX_EVENT_BYTES))
    except TollgateError as exc:
        return error_response(exc, "openai")
    try:
        reply = await webhooks_pb2_grpc.StripeWebhooksStub(deps.billing_channel).Deliver(
            webhooks_pb2.DeliverRequest(
                payload=payload, signature=request.headers.get("stripe-signature", ""), request_id=request_id
            ),
            timeout=deps.settings.manage_timeout_seconds,
        )
    except grpc.aio.AioRpcError as err:
        log.warning("stripe_webhook_billing_unavailable", code=err.code().name)
        return json_response({"received": False, "message": "billing is unavailable; retry"}, 503)
    return json_response({"received": 200 <= reply.status < 300, "message": reply.message}, reply.status)
