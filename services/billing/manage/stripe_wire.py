"""Request and response models of the management API's Stripe routes: top-ups, a plan's Stripe
link, subscriptions. Money arrives as decimal strings of USD (``wire.Money``: micro-USD inside) and
must be whole cents within Stripe's limits, since Stripe charges cents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from services.billing.manage.views import View
from services.billing.manage.wire import Money, ResourceId, WireModel
from services.common.money import format_micros

MICROS_PER_CENT = 10_000
MIN_CHARGE_CENTS = 50  # Stripe's minimum charge in USD
MAX_CHARGE_CENTS = 99_999_999  # Stripe's maximum charge in USD ($999,999.99)
StripeId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
PaymentMethodId = Annotated[str, Field(min_length=4, max_length=100, pattern=r"^(pm|card|src)_[A-Za-z0-9_]+$",
                                       examples=["pm_card_visa"])]


def cents_of(micros: int, what: str) -> int:
    """Whole cents within Stripe's limits, or a ValueError that is the whole 400 message."""
    if micros % MICROS_PER_CENT:
        raise ValueError(f"{what} must be a whole number of cents, such as \"10.00\"")
    cents = micros // MICROS_PER_CENT
    if cents < MIN_CHARGE_CENTS:
        raise ValueError(f"{what} must be at least \"0.50\" (Stripe's minimum charge)")
    if cents > MAX_CHARGE_CENTS:
        raise ValueError(f"{what} must be at most \"999999.99\" (Stripe's maximum charge)")
    return cents


class TopupCreate(WireModel):
    amount: Money = Field(description="USD to add to the prepaid balance, whole cents, at least \"0.50\"")
    payment_method: PaymentMethodId | None = Field(
        default=None, description="confirm now with this payment method; without one, confirm with "
        "the client_secret from the browser (Stripe.js)",
    )

    @model_validator(mode="after")
    def _whole_cents(self) -> Self:
        cents_of(self.amount, "amount")
        return self

    @property
    def cents(self) -> int:
        return self.amount // MICROS_PER_CENT


class PlanStripeLink(WireModel):
    """Link to an existing Stripe Plan (``stripe_plan_id``), or create one (``amount`` + ``interval``)."""

    stripe_plan_id: StripeId | None = None
    amount: Money | None = Field(default=None, description="price per interval, USD, whole cents")
    interval: Literal["day", "week", "month", "year"] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        creating = self.amount is not None or self.interval is not None
        if (self.stripe_plan_id is None) == (not creating):
            raise ValueError("send either stripe_plan_id, or amount and interval to create a Stripe Plan")
        if creating:
            if self.amount is None or self.interval is None:
                raise ValueError("amount and interval go together: send both to create a Stripe Plan")
            cents_of(self.amount, "amount")
        return self


class SubscriptionCreate(WireModel):
    plan_id: ResourceId = Field(
        description="a plan linked to a Stripe Plan (PUT /v1/manage/plans/{id}/stripe)"
    )
    payment_method: PaymentMethodId | None = Field(
        default=None, description="becomes the customer's default payment method before subscribing",
    )


class TopupView(View):
    object: Literal["topup"] = "topup"
    id: str = Field(description="the Stripe PaymentIntent id")
    account_id: str
    amount: str = Field(description="USD, decimal string")
    currency: str
    status: str = Field(description="Stripe's PaymentIntent status; credit follows its succeeded webhook")
    client_secret: str | None = Field(description="for Stripe.js to confirm in the browser")


class PlanStripeView(View):
    object: Literal["plan_stripe_link"] = "plan_stripe_link"
    plan_id: str
    stripe_plan_id: str


class SubscriptionView(View):
    object: Literal["subscription"] = "subscription"
    id: str
    account_id: str
    plan_id: str | None
    stripe_plan_id: str | None
    status: str = Field(description="Stripe's status: active, trialing, past_due, canceled, unpaid, ...")
    current_period_end: datetime | None
    cancel_at_period_end: bool
    billing_hold: str | None = Field(description="why the account's keys are suspended, if they are")
    synced_at: datetime


def topup_view(pi: dict[str, object], account_id: str) -> TopupView:
    amount = int(str(pi["amount"]))
    return TopupView(
        id=str(pi["id"]), account_id=account_id, amount=format_micros(amount * MICROS_PER_CENT),
        currency=str(pi.get("currency") or "usd").upper(), status=str(pi["status"]),
        client_secret=None if pi.get("client_secret") is None else str(pi["client_secret"]),
    )
