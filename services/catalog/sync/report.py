"""The report of one sync run: what the management API answers, the CLI prints and ``sync_runs`` keeps.

Lists are capped (a hostile feed must not make the report as large as the feed); each list has its
total alongside.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.catalog.sync.plan import Amounts, Plan
from services.common.money import format_micros

# applied: some change applied (others may be held); held: nothing applied, something held for review
Status = Literal["applied", "held", "unchanged", "failed", "dry_run"]
Trigger = Literal["schedule", "api", "cli"]
LIST_CAP = 100


class PriceView(BaseModel):
    """USD per 1M tokens, decimal strings; the batch discount in percent."""

    input: str
    cached_input: str
    cache_write: str
    output: str
    batch_discount: str

    @classmethod
    def of(cls, amounts: Amounts) -> PriceView:
        return cls(input=format_micros(amounts[0]), cached_input=format_micros(amounts[1]),
                   cache_write=format_micros(amounts[2]), output=format_micros(amounts[3]),
                   batch_discount=f"{amounts[4] / 100:g}")


class AppliedChange(BaseModel):
    model_id: str
    change: Literal["price", "model_added"]
    price_id: str | None = None
    price: PriceView | None = None
    enabled: bool | None = None
    note: str | None = None


class HeldChange(BaseModel):
    change_id: str | None = Field(description="the pending change to approve or reject (none in a dry run)")
    model_id: str
    reasons: list[str]
    current: PriceView | None
    proposed: PriceView


class EntryProblem(BaseModel):
    name: str | None
    reason: str


class SyncReport(BaseModel):
    object: Literal["catalog.sync_report"] = "catalog.sync_report"
    source: str
    format: str
    trigger: Trigger
    status: Status
    error: str | None = Field(default=None, description="why nothing was applied")
    started_at: datetime
    entries: int = 0
    skipped: int = 0
    unchanged: int = 0
    applied: list[AppliedChange] = Field(default_factory=list)
    held: list[HeldChange] = Field(default_factory=list)
    ignored_unknown: list[str] = Field(default_factory=list)
    ignored_unknown_total: int = 0
    errors: list[EntryProblem] = Field(default_factory=list)
    errors_total: int = 0
    other_errors_total: int = Field(default=0, description="errors in entries the catalog ignores anyway")
    missing_upstream: list[str] = Field(
        default_factory=list, description="models deployed at this provider that its list no longer has"
    )


def planned(report: SyncReport, plan: Plan, entries: int, skipped: int) -> SyncReport:
    """The parts of the report the plan already knows."""
    return report.model_copy(update={
        "entries": entries, "skipped": skipped, "unchanged": plan.unchanged,
        "ignored_unknown": plan.ignored[:LIST_CAP], "ignored_unknown_total": len(plan.ignored),
        "errors": [EntryProblem(name=e.name, reason=e.reason) for e in plan.errors[:LIST_CAP]],
        "errors_total": len(plan.errors), "other_errors_total": plan.other_errors,
        "missing_upstream": plan.missing_upstream[:LIST_CAP],
    })
