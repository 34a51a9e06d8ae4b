"""Response models of the management API and how a database row becomes one.

Money leaves as ``format_micros`` strings (``"20.000000"``) and windows in their canonical spelling
(``"1d"``). A key's hash never leaves billing, and its secret appears only in ``KeyWithSecret``,
the answer to create and rotate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import asyncpg
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)

from services.billing.key_events import effective_limits, overrides_of
from services.billing.manage.windows import format_window
from services.common.events.keys import AccountStatus, BillingMode, KeyKind, KeyStatus
from services.common.money import format_micros

T = TypeVar("T", bound=BaseModel)


class View(BaseModel):
    # every field of an answer is always sent, defaults included: the schema says so
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)


class AccountView(View):
    object: Literal["account"] = "account"
    id: str
    name: str
    parent_id: str | None
    billing: BillingMode
    status: AccountStatus
    currency: str
    created_at: datetime
    updated_at: datetime


class LimitsView(View):
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrency: int | None = None
    budget_amount: str | None = Field(default=None, examples=["20.000000"])
    budget_window: str | None = Field(default=None, examples=["1d"])
    allowed_models: list[str] | None = None


class OverridesView(LimitsView):
    """A key's overrides: a field is present only when overridden (``null`` = unlimited)."""

    @model_serializer(mode="wrap")
    def _only_overridden(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}


# the serializer hides the fields from pydantic's schema; state them (all optional) for OpenAPI
_OVERRIDES_SCHEMA = {
    **LimitsView.model_json_schema(mode="validation"), "title": "LimitOverrides",
    "description": "this key's overrides of its plan: only the fields overridden are present",
}


class PlanView(View):
    object: Literal["plan"] = "plan"
    id: str
    name: str
    account_id: str | None = Field(description="owner account; null = a global plan")
    requests_per_minute: int | None
    tokens_per_minute: int | None
    max_concurrency: int | None
    budget_amount: str | None = Field(examples=["20.000000"])
    budget_window: str | None = Field(examples=["1d"])
    allowed_models: list[str] | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class KeyView(View):
    object: Literal["key"] = "key"
    id: str
    account_id: str
    plan_id: str
    name: str
    prefix: str = Field(description="the first characters of the secret, to tell keys apart")
    kind: KeyKind
    status: KeyStatus
    expires_at: datetime | None
    limits: Annotated[OverridesView, WithJsonSchema(_OVERRIDES_SCHEMA)]
    effective_limits: LimitsView = Field(description="what the key gets: the plan with the overrides")
    rotated_from: str | None
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime


class KeyWithSecret(KeyView):
    key: str = Field(description="the secret: shown in this response only, never again")


class ListView(View, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool


class AccountList(ListView[AccountView]):
    pass


class PlanList(ListView[PlanView]):
    pass


class KeyList(ListView[KeyView]):
    pass


def limits_view(limits: dict[str, Any]) -> OverridesView:
    """Column-named limits (micros, seconds) → the wire names and formats; only keys present are set."""
    out: dict[str, Any] = {}
    for name, value in limits.items():
        if name == "budget_micros":
            out["budget_amount"] = None if value is None else format_micros(value)
        elif name == "budget_window_seconds":
            out["budget_window"] = None if value is None else format_window(value)
        elif name == "allowed_models":
            out[name] = None if value is None else list(value)
        else:
            out[name] = value
    return OverridesView(**out)


def account_view(row: asyncpg.Record) -> AccountView:
    return AccountView(
        id=row["id"], name=row["name"], parent_id=row["parent_id"], billing=row["billing"],
        status=row["status"], currency=row["currency"].strip(), created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def plan_view(row: asyncpg.Record) -> PlanView:
    limits = limits_view({name: row[name] for name in (
        "requests_per_minute", "tokens_per_minute", "max_concurrency", "budget_micros",
        "budget_window_seconds", "allowed_models")})
    return PlanView(
        **limits.model_dump(mode="python"), id=row["id"], name=row["name"], account_id=row["account_id"],
        expires_at=row["expires_at"], created_at=row["created_at"], updated_at=row["updated_at"],
    )


def key_view(row: asyncpg.Record) -> KeyView:
    """``row``: a key joined with its plan's limit columns (see ``store.KEY_COLUMNS``)."""
    overrides = overrides_of(row["overrides"])
    return KeyView(
        id=row["id"], account_id=row["account_id"], plan_id=row["plan_id"], name=row["name"],
        prefix=row["prefix"], kind=row["kind"], status=row["status"], expires_at=row["expires_at"],
        limits=limits_view(overrides),
        effective_limits=LimitsView(**limits_view(effective_limits(row, overrides)).model_dump()),
        rotated_from=row["rotated_from"], last_used_at=row["last_used_at"], created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def with_secret(view: KeyView, secret: str) -> KeyWithSecret:
    return KeyWithSecret(**view.model_dump(), key=secret)
