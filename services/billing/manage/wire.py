"""Request models of the management API, exactly as clients send them (pydantic v2, unknown fields
refused). Money arrives as decimal strings of USD and budget windows as ``"5h"``-style strings; both
are converted here, at the boundary, to integer micro-USD and seconds (what the tables hold).

Absent and ``null`` differ in PATCH bodies: absent leaves a field alone, ``null`` clears it (a limit
becomes unlimited). Handlers read ``model_fields_set`` for that.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from services.billing.manage.windows import PATTERN as WINDOW_PATTERN
from services.billing.manage.windows import parse_window
from services.common.events.keys import AccountStatus, BillingMode, KeyKind, KeyStatus
from services.common.money import format_micros, micros_from_wire

MAX_MICROS = 10**15  # one billion USD: a limit, not an amount anyone means


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _money(value: object, info: ValidationInfo) -> int:
    what = info.field_name or "amount"
    micros = micros_from_wire(value, what, 'US dollars such as "20.00"')
    if micros > MAX_MICROS:
        raise ValueError(f"{what} must be at most \"{format_micros(MAX_MICROS)}\"")
    return micros


def _window(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError("budget_window must be a string such as \"5h\" or \"30d\"")
    return parse_window(value)


Name = Annotated[str, Field(min_length=1, max_length=200)]
ResourceId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
Count = Annotated[int, Field(strict=True, ge=0, le=2_147_483_647)]
Money = Annotated[
    int,
    BeforeValidator(_money),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,6})?$", "examples": ["20.00"],
                    "description": "US dollars, a decimal string (at most 6 decimals); never a JSON number"}),
]
Window = Annotated[
    int,
    BeforeValidator(_window),
    WithJsonSchema({"type": "string", "pattern": WINDOW_PATTERN, "examples": ["5h", "30d"],
                    "description": "a whole number and a unit s/m/h/d/w, from 60s to 366d"}),
]
ModelPattern = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:/@*?\[\]-]+$")]


class LimitFields(WireModel):
    """The limits a plan sets and a key may override. ``null`` = unlimited."""

    requests_per_minute: Count | None = None
    tokens_per_minute: Count | None = None
    max_concurrency: Count | None = None
    budget_amount: Money | None = Field(default=None, description="spend allowed per budget_window, USD")
    budget_window: Window | None = None
    allowed_models: list[ModelPattern] | None = Field(
        default=None, max_length=256, description="model ids or glob patterns (\"gpt-4o*\"); null = all"
    )

    def internal(self) -> dict[str, Any]:
        """The fields the client sent, under the column names of plans / keys.overrides."""
        names = {"budget_amount": "budget_micros", "budget_window": "budget_window_seconds"}
        return {names.get(f, f): getattr(self, f) for f in self.model_fields_set}


def _budget_pair(model: LimitFields) -> None:
    sent = model.model_fields_set
    if ("budget_amount" in sent) != ("budget_window" in sent) or (
        (model.budget_amount is None) != (model.budget_window is None)
    ):
        raise ValueError("budget_amount and budget_window go together: set both, or neither")


def _no_nulls(model: BaseModel, *fields: str) -> None:
    for field in fields:
        if field in model.model_fields_set and getattr(model, field) is None:
            raise ValueError(f"{field} cannot be null")


class KeyLimits(LimitFields):
    """Per-key overrides: only the fields sent override the plan (``null`` = unlimited)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        _budget_pair(self)
        return self


# --- accounts ---------------------------------------------------------------------------------

class AccountCreate(WireModel):
    name: Name
    parent_id: ResourceId | None = Field(
        default=None, description="the parent account; default for an account-scoped caller: its own"
    )
    billing: BillingMode = Field(default="invoice", description="prepaid accounts are balance-checked")


class AccountPatch(WireModel):
    name: Name | None = None
    billing: BillingMode | None = None
    status: AccountStatus | None = Field(default=None, description="suspended = every key answers 403")

    @model_validator(mode="after")
    def _check(self) -> Self:
        _no_nulls(self, "name", "billing", "status")
        return self


# --- plans ------------------------------------------------------------------------------------

class PlanCreate(LimitFields):
    name: Name
    account_id: ResourceId | None = Field(
        default=None, description="owner: the plan is visible to this account's tree; null = global"
    )
    expires_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _budget_pair(self)
        return self


class PlanPatch(LimitFields):
    """The budget pair is checked on the plan as patched (so the amount alone may change)."""

    name: Name | None = None
    expires_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _no_nulls(self, "name")
        return self


# --- keys -------------------------------------------------------------------------------------

class KeyCreate(WireModel):
    account_id: ResourceId
    plan_id: ResourceId
    name: Name
    expires_at: AwareDatetime | None = None
    kind: KeyKind = Field(default="inference", description="management keys call /v1/manage for their tree")
    limits: KeyLimits | None = None


class KeyPatch(WireModel):
    name: Name | None = None
    plan_id: ResourceId | None = None
    status: Literal["active", "disabled"] | None = Field(default=None, description="revoke with DELETE")
    expires_at: AwareDatetime | None = None
    limits: KeyLimits | None = Field(default=None, description="replaces every override; {} or null clears")

    @model_validator(mode="after")
    def _check(self) -> Self:
        _no_nulls(self, "name", "plan_id", "status")
        return self


class KeyRotate(WireModel):
    """No fields: the new key copies account, plan, name, kind, expiry, status and overrides."""


# --- query strings ----------------------------------------------------------------------------

class Page(WireModel):
    limit: int = Field(default=20, ge=1, le=100)
    after: ResourceId | None = Field(default=None, description="the last id of the previous page")


class AccountQuery(Page):
    parent_id: ResourceId | None = None


class PlanQuery(Page):
    pass


class KeyQuery(Page):
    account_id: ResourceId | None = None
    status: KeyStatus | None = None
    kind: KeyKind | None = None
