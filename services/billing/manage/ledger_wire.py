"""Request and response models of the balance and credit-ledger routes.

Money is a decimal string of USD both ways; an adjustment may be negative (``"-5.00"``), nothing else
may. Transaction ids are the ledger's own integers, shown as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BeforeValidator, Field, WithJsonSchema, model_validator

from services.billing.manage.views import ListView, View
from services.billing.manage.wire import MAX_MICROS, WireModel
from services.common.events.keys import BillingMode
from services.common.money import format_micros, micros_from_wire


def _signed_money(value: object) -> int:
    negative = isinstance(value, str) and value.strip().startswith("-")
    text = value.strip()[1:] if negative and isinstance(value, str) else value
    micros = micros_from_wire(text, "amount", 'US dollars such as "10.00"')
    if micros == 0 or micros > MAX_MICROS:
        raise ValueError(f"amount must be non-zero and at most \"{format_micros(MAX_MICROS)}\"")
    return -micros if negative else micros


SignedMoney = Annotated[
    int,
    BeforeValidator(_signed_money),
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,6})?$", "examples": ["10.00", "-2.50"],
                    "description": "US dollars, a decimal string; negative only for an adjustment"}),
]


class CreditCreate(WireModel):
    amount: SignedMoney
    reason: str = Field(min_length=1, max_length=500)
    kind: Literal["grant", "adjustment"] = Field(
        default="grant", description="grant: credit given (may expire); adjustment: a correction, either sign"
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="grants only: unused credit is withdrawn after this time"
    )
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="send the same key again and the first answer is returned, nothing is posted twice",
    )

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.kind == "grant" and self.amount < 0:
            raise ValueError("a grant adds credit: use kind \"adjustment\" to take credit away")
        if self.expires_at is not None and self.kind != "grant":
            raise ValueError("only a grant can expire")
        return self


class LedgerQuery(WireModel):
    after: int | None = Field(default=None, ge=0, description="the last transaction id of the previous page")
    limit: int = Field(default=50, ge=1, le=500)


class BalanceView(View):
    object: Literal["balance"] = "balance"
    account_id: str
    billing: BillingMode
    balance: str = Field(description="the ledger's balance: the sum of every transaction of the account")
    currency: str
    held: str | None = Field(
        description="prepaid: reserved by requests in flight or not yet charged (null when unknown)"
    )
    available: str | None = Field(description="prepaid: what new requests can spend, balance - held")
    seq: int = Field(description="the sequence number of the account's latest transaction")
    updated_at: datetime | None


class TransactionView(View):
    object: Literal["ledger_transaction"] = "ledger_transaction"
    id: int
    account_id: str
    seq: int
    kind: str
    amount: str
    balance_after: str
    reason: str
    reference: str | None
    expires_at: datetime | None
    occurred_at: datetime
    created_at: datetime


class TransactionList(ListView[TransactionView]):
    pass
