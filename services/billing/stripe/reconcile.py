"""Reconciliation: re-read Stripe and repair what a missed or failed webhook left behind.

Webhooks are the fast path, but Stripe may give up on an endpoint that was down, and events can be
lost in between. Every ``BILLING_RECONCILE_INTERVAL_SECONDS`` (and on demand, operator only) this
asks Stripe about everything we are waiting on and applies its answer through the same functions the
webhooks use, so a late webhook afterwards does nothing:

- PaymentIntents we created that are not credited yet (younger than the lookback): retrieved one by
  one (localstripe cannot list them per customer); a succeeded one is credited (``topup:<pi id>``).
- Subscriptions of every customer we know: listed (``status=all``, every page) and applied, which also
  corrects the account's billing hold. A subscription we hold that Stripe no longer lists is retrieved
  alone; one made in Stripe that we never stored is found only by the listing, hence every page.
- Invoices are not stored: a paid or failed invoice matters only through its subscription's status,
  which the step above applies; they are counted, so the report shows what was looked at.

One failing object is reported and skipped; the rest still run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog
from pydantic import BaseModel, Field

from services.billing.stripe import store
from services.billing.stripe.client import StripeBilling
from services.billing.stripe.subscriptions import apply_subscription
from services.billing.stripe.topups import credit_payment_intent
from services.common.outbox import Flusher

log = structlog.get_logger(__name__)


class ReconcileReport(BaseModel):
    """What one run looked at and what it fixed (ids, so an operator can follow up)."""

    object: str = "reconciliation"
    payment_intents_checked: int = 0
    topups_credited: list[str] = Field(default_factory=list, description="PaymentIntents credited now")
    customers_checked: int = 0
    subscriptions_checked: int = 0
    subscriptions_repaired: list[str] = Field(default_factory=list)
    holds_changed: list[str] = Field(default_factory=list, description="accounts whose keys changed state")
    invoices_seen: int = 0
    errors: list[str] = Field(default_factory=list, description="objects that could not be checked")

    @property
    def fixed(self) -> int:
        return len(self.topups_credited) + len(self.subscriptions_repaired)


async def _payment_intents(ctx: StripeBilling, pool: asyncpg.Pool, report: ReconcileReport) -> None:
    gateway = ctx.require()
    async with pool.acquire() as conn:
        ids = await store.open_payment_intents(conn, ctx.config.reconcile_lookback_hours)
    for pi_id in ids:
        report.payment_intents_checked += 1
        try:
            pi = await gateway.retrieve_payment_intent(pi_id)
            async with pool.acquire() as conn, conn.transaction():
                credit = await credit_payment_intent(conn, pi)
        except Exception as exc:  # noqa: BLE001 - one object's failure must not stop the run
            report.errors.append(f"{pi_id}: {type(exc).__name__}")
            continue
        if credit.outcome == "credited":
            report.topups_credited.append(pi_id)


async def _subscriptions(ctx: StripeBilling, pool: asyncpg.Pool, report: ReconcileReport) -> int:
    gateway = ctx.require()
    touched = 0
    async with pool.acquire() as conn:
        known = await store.customers(conn)
    for row in known:
        account_id, customer = row["id"], row["stripe_customer_id"]
        report.customers_checked += 1
        try:
            subs: list[dict[str, Any]] = await gateway.list_subscriptions(customer)
            report.invoices_seen += len(await gateway.list_invoices(customer))
            async with pool.acquire() as conn:
                listed = {s["id"] for s in subs}
                local = [r["id"] for r in await store.subscriptions_of(conn, account_id)]
            subs += [await gateway.retrieve_subscription(sub_id) for sub_id in local if sub_id not in listed]
        except Exception as exc:  # noqa: BLE001
            report.errors.append(f"{customer}: {type(exc).__name__}")
            continue
        for sub in subs:
            report.subscriptions_checked += 1
            try:
                async with pool.acquire() as conn, conn.transaction():
                    applied = await apply_subscription(conn, sub, ctx.config.past_due_holds)
            except Exception as exc:  # noqa: BLE001
                report.errors.append(f"{sub['id']}: {type(exc).__name__}")
                continue
            if applied.outcome == "applied":
                report.subscriptions_repaired.append(str(sub["id"]))
            if applied.hold_changed and applied.account_id not in report.holds_changed:
                report.holds_changed.append(str(applied.account_id))
            touched += applied.keys_touched
    return touched


async def reconcile(
    ctx: StripeBilling, pool: asyncpg.Pool, outbox: Flusher, flush_timeout: float
) -> ReconcileReport:
    """One full run; flushes keys.v1 if a hold changed. Raises StripeNotConfigured without a key."""
    ctx.require()
    report = ReconcileReport()
    await _payment_intents(ctx, pool, report)
    touched = await _subscriptions(ctx, pool, report)
    if touched:
        await outbox.flush(flush_timeout)
    log.info("stripe_reconciled", fixed=report.fixed, topups_credited=report.topups_credited,
             subscriptions_repaired=report.subscriptions_repaired, holds_changed=report.holds_changed,
             payment_intents_checked=report.payment_intents_checked,
             subscriptions_checked=report.subscriptions_checked, errors=len(report.errors))
    return report


async def run_periodically(
    ctx: StripeBilling, pool: asyncpg.Pool, outbox: Flusher, flush_timeout: float, interval: float,
    stop: asyncio.Event,
) -> None:
    """Billing's scheduled task: a run every ``interval`` seconds until ``stop`` (0 = never)."""
    if ctx.gateway is None or interval <= 0:
        return
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
            return
        except TimeoutError:
            pass
        try:
            await reconcile(ctx, pool, outbox, flush_timeout)
        except Exception as exc:  # noqa: BLE001 - the next run tries again
            log.warning("stripe_reconcile_failed", error_type=type(exc).__name__)
