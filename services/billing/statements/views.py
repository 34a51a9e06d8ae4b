"""A statement as the API answers it (pydantic, rendered as JSON; the CSV is rendered from the same
model by ``export``). Money is a decimal string of USD with six decimals, never a JSON number; inside,
everything is integer micro-USD until ``statement_view`` formats it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LedgerKind = Literal["charge", "topup", "grant", "refund", "adjustment", "expiry"]
LEDGER_KINDS: tuple[LedgerKind, ...] = ("charge", "topup", "grant", "refund", "adjustment", "expiry")


class View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True,
                              json_schema_serialization_defaults_required=True)


class UsageTotals(View):
    requests: int
    input_tokens: int = Field(description="uncached input tokens")
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost: str = Field(examples=["12.345678"], description="US dollars, as metering priced each request")


class UsageLine(UsageTotals):
    """One (model, key) pair's usage in the period."""

    model: str
    key_id: str


class ModelLine(UsageTotals):
    model: str


class KeyLine(UsageTotals):
    key_id: str


class UsageSection(View):
    lines: list[UsageLine] = Field(description="by (model, key), sorted; their sum is total")
    by_model: list[ModelLine]
    by_key: list[KeyLine]
    total: UsageTotals = Field(description="the period's usage: equals metering's total for the period")
    late: UsageTotals = Field(
        description="usage of earlier, already closed periods that reached metering after they closed: "
        "billed on this statement, since a closed statement never changes")


class LedgerLine(View):
    kind: LedgerKind
    count: int
    amount: str = Field(examples=["-1.250000"], description="signed effect on the balance (charges negative)")


class LedgerSection(View):
    opening_balance: str
    lines: list[LedgerLine] = Field(description="one per kind, every kind listed")
    closing_balance: str = Field(description="opening_balance + the sum of lines, exactly")


class StatementView(View):
    object: Literal["statement"] = "statement"
    account_id: str
    period: str = Field(examples=["2026-11", "2026-11-03..2026-11-09"])
    start: datetime = Field(alias="from", serialization_alias="from", description="inclusive")
    end: datetime = Field(alias="to", serialization_alias="to", description="exclusive")
    status: Literal["open", "closed"] = Field(
        description="closed: stored at closing and never changes; open: computed now, may still change")
    closed_at: datetime | None
    currency: Literal["USD"] = "USD"
    usage: UsageSection
    ledger: LedgerSection


class StatementSummary(View):
    object: Literal["statement_summary"] = "statement_summary"
    period: str
    start: datetime = Field(alias="from", serialization_alias="from")
    end: datetime = Field(alias="to", serialization_alias="to")
    status: Literal["open", "closed"]
    closed_at: datetime | None
    usage_cost: str | None = Field(description="closed statements only (an open one is computed on request)")
    closing_balance: str | None = Field(description="closed statements only")


class StatementList(View):
    object: Literal["list"] = "list"
    data: list[StatementSummary] = Field(description="newest first: this month, then every earlier one")


class ClosedRef(View):
    account_id: str
    period: str


class CloseRun(View):
    object: Literal["statement_close_run"] = "statement_close_run"
    closed: list[ClosedRef] = Field(description="statements this run closed (none already closed)")
    skipped: bool = Field(description="true when another replica's run held the lock: nothing was done")
