"""The Stripe gateway: the official SDK (``stripe.StripeClient``), each call run off the event loop
(``asyncio.to_thread``), answers as plain dicts, and Stripe's failures turned into our error hierarchy.

Why threads and not the SDK's ``*_async`` methods: those work against localstripe, but stripe 16's
httpx client uploads bodies with httpx's deprecated ``data=<bytes>``, which raises under
warnings-as-errors (our tests) and will break on an httpx upgrade; the requests client does not.
Stripe calls are rare (a top-up, a subscription, a webhook's re-retrieve), so a thread each is cheap.
stripe 16 objects are not dicts, so every answer is ``to_dict()``-ed at this boundary and nothing else
sees SDK types.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import stripe
import structlog

from services.common.errors import DependencyUnavailable, InvalidRequest, UpstreamError

log = structlog.get_logger(__name__)
LIST_PAGE_SIZE = 100  # the most objects Stripe returns in one page of a list


class StripeNotConfigured(DependencyUnavailable):
    """No Stripe API key (or no webhook secret): the feature is off, everything else works."""

    default_code = "stripe_not_configured"


class PaymentFailed(InvalidRequest):
    default_code = "payment_failed"


@dataclass(frozen=True)
class StripeConfig:
    """What the Stripe handlers need besides the client (from ``BillingSettings``)."""

    webhook_secret: str | None = field(default=None, repr=False)
    webhook_tolerance_seconds: int = 300
    currency: str = "usd"
    past_due_holds: bool = False
    reconcile_lookback_hours: int = 72


def _mapped(exc: stripe.StripeError, what: str) -> Exception:
    """Stripe's refusal of *our request* is the caller's 400; anything else is Stripe failing (502)."""
    log.warning("stripe_call_failed", call=what, error_type=type(exc).__name__,
                http_status=exc.http_status, code=exc.code)
    if isinstance(exc, stripe.CardError):
        return PaymentFailed(f"The payment was declined: {exc.user_message or 'card declined'}.")
    if isinstance(exc, stripe.InvalidRequestError) and exc.http_status in (400, 404):
        reason = exc.user_message or exc.code or "invalid"
        return InvalidRequest(f"Stripe refused the request ({what}): {reason}.",
                              code="stripe_invalid_request")
    return UpstreamError(f"Stripe did not answer {what}; retry shortly.", code="stripe_unavailable")


class StripeGateway:
    """Every Stripe call billing makes. Methods return Stripe's object as a dict."""

    def __init__(
        self, api_key: str, api_base: str, timeout: float, config: StripeConfig,
        page_size: int = LIST_PAGE_SIZE,
    ) -> None:
        if not 1 <= page_size <= LIST_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{LIST_PAGE_SIZE} (Stripe's limit), not {page_size}")
        self.config = config
        self.page_size = page_size
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base.rstrip("/")}, max_network_retries=2,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    @staticmethod
    async def _call(what: str, request: Callable[[], Any]) -> dict[str, Any]:
        try:
            obj = await asyncio.to_thread(request)
        except stripe.StripeError as exc:
            raise _mapped(exc, what) from None
        result: dict[str, Any] = obj.to_dict()
        return result

    async def _list_all(
        self, what: str, list_page: Callable[..., Any], params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Every object of a Stripe list, page by page (``limit``, then ``starting_after`` = the last
        object's id while ``has_more``): one page holds at most 100 objects, and a caller that read only
        the first would silently miss the rest (a customer's 101st subscription never reconciled).

        A page that cannot move the cursor (empty, or ending on an id already used as a cursor) would
        loop forever; it is Stripe failing, raised rather than answered as a shorter list."""
        objects: list[dict[str, Any]] = []
        cursors: set[str] = set()
        page_params: dict[str, Any] = {**params, "limit": self.page_size}
        while True:
            page = await self._call(what, functools.partial(list_page, params=page_params))
            data: list[dict[str, Any]] = list(page.get("data", []))
            objects += data
            if not page.get("has_more"):
                return objects
            cursor = str(data[-1]["id"]) if data else None
            if cursor is None or cursor in cursors:
                log.warning("stripe_list_stuck", call=what, cursor=cursor, read=len(objects))
                raise UpstreamError(f"Stripe's {what} did not advance past {cursor}; retry shortly.",
                                    code="stripe_unavailable")
            cursors.add(cursor)
            page_params = {**page_params, "starting_after": cursor}

    async def create_customer(self, account_id: str, name: str) -> dict[str, Any]:
        return await self._call("customers.create", lambda: self._client.v1.customers.create(
            params={"name": name, "metadata": {"account_id": account_id}},
            options={"idempotency_key": f"tollgate-customer-{account_id}"},
        ))

    async def create_payment_intent(
        self, customer: str, amount_cents: int, metadata: dict[str, str], payment_method: str | None,
        idempotency_key: str,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"amount": amount_cents, "currency": self.config.currency,
                                  "customer": customer, "metadata": metadata}
        if payment_method is not None:
            params.update(payment_method=payment_method, confirm=True)
        return await self._call("payment_intents.create", lambda: self._client.v1.payment_intents.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": idempotency_key},
        ))

    async def retrieve_payment_intent(self, pi_id: str) -> dict[str, Any]:
        return await self._call("payment_intents.retrieve",
                                lambda: self._client.v1.payment_intents.retrieve(pi_id))

    async def create_plan(self, name: str, amount_cents: int, interval: str) -> dict[str, Any]:
        product = await self._call("products.create",
                                   lambda: self._client.v1.products.create(params={"name": name}))
        return await self._call("plans.create", lambda: self._client.v1.plans.create(params={
            "amount": amount_cents, "currency": self.config.currency, "interval": interval,
            "product": product["id"],
        }))

    async def retrieve_plan(self, plan_id: str) -> dict[str, Any]:
        return await self._call("plans.retrieve", lambda: self._client.v1.plans.retrieve(plan_id))

    async def set_default_payment_method(self, customer: str, payment_method: str) -> str:
        """Attach ``payment_method`` to the customer and make it what invoices charge; its new id."""
        pm = await self._call("payment_methods.attach", lambda: self._client.v1.payment_methods.attach(
            payment_method, params={"customer": customer}))
        await self._call("customers.update", lambda: self._client.v1.customers.update(
            customer, params={"invoice_settings": {"default_payment_method": pm["id"]}}))
        return str(pm["id"])

    async def create_subscription(
        self, customer: str, stripe_plan_id: str, metadata: dict[str, str], idempotency_key: str
    ) -> dict[str, Any]:
        return await self._call("subscriptions.create", lambda: self._client.v1.subscriptions.create(
            params={"customer": customer, "items": [{"plan": stripe_plan_id}], "metadata": metadata},
            options={"idempotency_key": idempotency_key},
        ))

    async def retrieve_subscription(self, sub_id: str) -> dict[str, Any]:
        return await self._call("subscriptions.retrieve",
                                lambda: self._client.v1.subscriptions.retrieve(sub_id))

    async def cancel_subscription(self, sub_id: str) -> dict[str, Any]:
        return await self._call("subscriptions.cancel", lambda: self._client.v1.subscriptions.cancel(sub_id))

    async def list_subscriptions(self, customer: str) -> list[dict[str, Any]]:
        """All the customer's subscriptions, canceled ones included (``status=all``), every page."""
        return await self._list_all("subscriptions.list", self._client.v1.subscriptions.list,
                                    {"customer": customer, "status": "all"})

    async def list_invoices(self, customer: str) -> list[dict[str, Any]]:
        """All the customer's invoices, every page."""
        return await self._list_all("invoices.list", self._client.v1.invoices.list, {"customer": customer})


@dataclass(frozen=True)
class StripeBilling:
    """What billing's Stripe code is handed: the gateway (None when no API key is configured) and
    the settings the handlers read."""

    gateway: StripeGateway | None = None
    config: StripeConfig = field(default_factory=StripeConfig)

    def require(self) -> StripeGateway:
        if self.gateway is None:
            raise StripeNotConfigured(
                "Stripe is not configured on this platform (BILLING_STRIPE_API_KEY is unset)."
            )
        return self.gateway
