"""Stripe webhooks: verify, record, process exactly once, answer what Stripe should do next.

- Authenticity is the signature: ``stripe.Webhook.construct_event`` checks the HMAC over the exact
  bytes and the timestamp against ``BILLING_STRIPE_WEBHOOK_TOLERANCE_SECONDS``; a forged or stale
  event is answered 400 and changes nothing.
- Exactly once: each event id gets one row in ``stripe_webhook_events``, locked and marked processed
  in the same transaction as its effect. A redelivered event finds it processed and is acknowledged
  200 without doing anything; the ledger's idempotency key is a second lock on money.
- State, not order: the object inside an event is a snapshot from when it was sent. Handlers
  re-retrieve the PaymentIntent or subscription from Stripe and apply *that*, so late, duplicated and
  out-of-order events all converge on Stripe's real state.
- A processing failure (Stripe unreachable, the database) answers 500 and leaves the event
  unprocessed, so Stripe's retry (or reconciliation) runs it again.

Nothing here logs a payload or a signature: only event ids, types and outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import stripe
import structlog
from prometheus_client import Counter

from services.billing.db import Conn
from services.billing.stripe import store
from services.billing.stripe.client import StripeBilling, StripeGateway
from services.billing.stripe.subscriptions import apply_subscription
from services.billing.stripe.topups import credit_payment_intent
from services.common.outbox import Flusher

log = structlog.get_logger(__name__)
EVENTS = Counter("tollgate_billing_stripe_webhooks_total", "Stripe webhook deliveries", ["type", "outcome"])

SUBSCRIPTION_EVENTS = frozenset({
    "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
})
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed"})
PAYMENT_INTENT_EVENTS = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed"})


@dataclass(frozen=True)
class Delivery:
    status: int
    message: str


async def _current(gateway: StripeGateway, event_type: str, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The object this event is about, as Stripe holds it now (None: nothing for us to do)."""
    if event_type in PAYMENT_INTENT_EVENTS:
        return await gateway.retrieve_payment_intent(str(obj["id"]))
    if event_type in SUBSCRIPTION_EVENTS:
        return await gateway.retrieve_subscription(str(obj["id"]))
    if event_type in INVOICE_EVENTS and obj.get("subscription"):
        sub = obj["subscription"]
        return await gateway.retrieve_subscription(str(sub["id"] if isinstance(sub, dict) else sub))
    return None


async def _apply(
    conn: Conn, event_type: str, current: dict[str, Any] | None, stripe_ctx: StripeBilling
) -> tuple[str, int]:
    """(outcome, keys republished) of one event, in the caller's transaction."""
    if current is None:
        return "ignored", 0
    if event_type in PAYMENT_INTENT_EVENTS:
        return (await credit_payment_intent(conn, current)).outcome, 0
    applied = await apply_subscription(conn, current, stripe_ctx.config.past_due_holds)
    return applied.outcome, applied.keys_touched


def verify(stripe_ctx: StripeBilling, payload: bytes, signature: str) -> dict[str, Any] | Delivery:
    """The verified event as a dict, or the refusal to answer."""
    secret = stripe_ctx.config.webhook_secret
    if stripe_ctx.gateway is None or not secret:
        return Delivery(503, "Stripe is not configured on this platform.")
    try:
        event = stripe.Webhook.construct_event(
            payload, signature, secret, tolerance=stripe_ctx.config.webhook_tolerance_seconds
        )
    except stripe.SignatureVerificationError:
        EVENTS.labels("unknown", "bad_signature").inc()
        log.warning("stripe_webhook_bad_signature")
        return Delivery(400, "The Stripe-Signature header is missing, invalid or too old.")
    except ValueError:
        EVENTS.labels("unknown", "bad_payload").inc()
        return Delivery(400, "The payload is not a Stripe event.")
    result: dict[str, Any] = event.to_dict()
    if not isinstance(result.get("id"), str) or not isinstance(result.get("type"), str):
        return Delivery(400, "The payload is not a Stripe event.")
    return result


async def deliver(
    stripe_ctx: StripeBilling, pool: asyncpg.Pool, outbox: Flusher, flush_timeout: float,
    payload: bytes, signature: str,
) -> Delivery:
    """Process one delivery; the answer's status is what Stripe gets."""
    verified = verify(stripe_ctx, payload, signature)
    if isinstance(verified, Delivery):
        return verified
    event_id, event_type = str(verified["id"]), str(verified["type"])
    obj = (verified.get("data") or {}).get("object") or {}
    gateway = stripe_ctx.require()
    async with pool.acquire() as conn:
        if await store.event_processed(conn, event_id):
            EVENTS.labels(event_type, "duplicate").inc()
            return Delivery(200, "already processed")
    try:
        current = await _current(gateway, event_type, obj)
        async with pool.acquire() as conn, conn.transaction():
            if not await store.claim_event(conn, event_id, event_type):
                EVENTS.labels(event_type, "duplicate").inc()
                return Delivery(200, "already processed")
            outcome, touched = await _apply(conn, event_type, current, stripe_ctx)
            await store.finish_event(conn, event_id, outcome)
    except Exception as exc:  # noqa: BLE001 - any failure: Stripe retries, nothing was marked
        EVENTS.labels(event_type, "error").inc()
        log.error("stripe_webhook_failed", event_id=event_id, type=event_type, error_type=type(exc).__name__)
        try:
            async with pool.acquire() as conn:
                await store.record_failure(conn, event_id, event_type, f"error: {type(exc).__name__}")
        except Exception:  # noqa: BLE001, S110 - the database itself may be what failed
            pass
        return Delivery(500, "The event could not be processed; retry later.")
    EVENTS.labels(event_type, outcome).inc()
    log.info("stripe_webhook_processed", event_id=event_id, type=event_type, outcome=outcome)
    if touched:
        await outbox.flush(flush_timeout)
    return Delivery(200, outcome)
