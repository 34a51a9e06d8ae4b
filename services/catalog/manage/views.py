"""Response models of the catalog's management API, built from stored records. Money is a decimal string
of USD per 1M tokens with 6 decimals (``"2.500000"``), the batch discount a percentage string; every
entity carries ``version``, the catalog.v1 version its current state was published at."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import asyncpg
import orjson
from pydantic import BaseModel, ConfigDict, Field

from services.catalog.records import AliasRecord, DeploymentRecord, ModelRecord, PriceRecord
from services.catalog.sync.report import PriceView, SyncReport
from services.common.money import format_micros

T = TypeVar("T")


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class PriceOut(View):
    object: Literal["catalog.price"] = "catalog.price"
    id: str = Field(description="the price version id that usage records carry")
    model_id: str
    effective_from: datetime
    status: Literal["in_force", "scheduled", "superseded"]
    input: str = Field(description="USD per 1M input tokens")
    cached_input: str = Field(description="USD per 1M cached input tokens")
    cache_write: str = Field(description="USD per 1M tokens written to the prompt cache")
    output: str = Field(description="USD per 1M output tokens")
    batch_discount: str = Field(description="percent off every amount for batch requests")
    source: str = Field(description="seed, sync:<source>, or the caller that made it")
    version: int


class DeploymentOut(View):
    object: Literal["catalog.deployment"] = "catalog.deployment"
    id: str
    model_id: str
    backend: Literal["triton", "openai", "anthropic"]
    endpoint: str
    upstream_model: str
    weight: int
    fallback: list[str]
    credentials_env: str | None
    region: str | None
    tier: str | None
    features: list[str] | None
    version: int
    deleted: bool = Field(default=False, description="true only in the answer to DELETE")


class AliasOut(View):
    object: Literal["catalog.alias"] = "catalog.alias"
    id: str
    target: str
    version: int
    deleted: bool = Field(default=False, description="true only in the answer to DELETE")


class ModelOut(View):
    object: Literal["model"] = "model"
    id: str
    display_name: str
    description: str
    category: str
    tags: list[str]
    input_modalities: list[str]
    output_modalities: list[str]
    capabilities: list[str]
    context_length: int
    max_output_tokens: int
    chat_template: str | None
    enabled: bool
    deprecated_at: datetime | None
    sunset_at: datetime | None
    replacement: str | None
    aliases: list[str]
    price: PriceOut | None = Field(description="the version in force now")
    deployments: list[DeploymentOut] | None = Field(description="operator only (null for other callers)")
    version: int
    created_at: datetime
    updated_at: datetime


class PendingOut(View):
    object: Literal["catalog.pending_change"] = "catalog.pending_change"
    id: str
    source: str
    kind: Literal["price"]
    model_id: str
    reasons: list[str]
    current: PriceView | None
    proposed: PriceView
    status: Literal["pending", "approved", "rejected"]
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    applied_price_id: str | None


class AuditOut(View):
    object: Literal["catalog.audit_record"] = "catalog.audit_record"
    id: int
    at: datetime
    actor: str
    request_id: str
    action: str
    entity_kind: str
    entity_id: str
    version: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str


class SyncRunOut(View):
    object: Literal["catalog.sync_run"] = "catalog.sync_run"
    id: int
    finished_at: datetime
    report: SyncReport


class ListView(View, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool


class ModelList(ListView[ModelOut]):
    pass


class PriceList(ListView[PriceOut]):
    in_force: str | None = Field(description="the id of the version in force at `at` (default: now)")


class DeploymentList(ListView[DeploymentOut]):
    pass


class AliasList(ListView[AliasOut]):
    pass


class PendingList(ListView[PendingOut]):
    pass


class AuditList(ListView[AuditOut]):
    pass


class SyncRunList(ListView[SyncRunOut]):
    pass


def price_out(price: PriceRecord, version: int, in_force_id: str | None, now: datetime) -> PriceOut:
    status: Literal["in_force", "scheduled", "superseded"] = (
        "in_force" if price.id == in_force_id else "scheduled" if price.effective_from > now else "superseded"
    )
    return PriceOut(
        id=price.id, model_id=price.model_id, effective_from=price.effective_from, status=status,
        input=format_micros(price.input_micros_per_mtok),
        cached_input=format_micros(price.cached_input_micros_per_mtok),
        cache_write=format_micros(price.cache_write_micros_per_mtok),
        output=format_micros(price.output_micros_per_mtok),
        batch_discount=f"{price.batch_discount_bps / 100:g}",
        source=price.source, version=version,
    )


def deployment_out(row: asyncpg.Record) -> DeploymentOut:
    record = DeploymentRecord.from_row(row)
    return DeploymentOut(**record.model_dump(), version=row["state_version"], deleted=row["deleted"])


def alias_out(row: asyncpg.Record) -> AliasOut:
    record = AliasRecord.from_row(row)
    return AliasOut(**record.model_dump(), version=row["state_version"], deleted=row["deleted"])


def model_out(row: asyncpg.Record, aliases: list[str], price: PriceOut | None,
              deployments: list[DeploymentOut] | None) -> ModelOut:
    record = ModelRecord.from_row(row)
    return ModelOut(
        **record.model_dump(), aliases=aliases, price=price, deployments=deployments,
        version=row["state_version"], created_at=row["created_at"], updated_at=row["updated_at"],
    )


def _price_view(data: str | None) -> PriceView | None:
    if data is None:
        return None
    amounts = orjson.loads(data)
    if amounts is None:
        return None
    return PriceView.of((amounts["input_micros_per_mtok"], amounts["cached_input_micros_per_mtok"],
                         amounts["cache_write_micros_per_mtok"], amounts["output_micros_per_mtok"],
                         amounts["batch_discount_bps"]))


def pending_out(row: asyncpg.Record) -> PendingOut:
    proposed = _price_view(row["proposed_price"])
    assert proposed is not None
    return PendingOut(
        id=row["id"], source=row["source"], kind=row["kind"], model_id=row["model_id"],
        reasons=list(row["reasons"]), current=_price_view(row["current_price"]), proposed=proposed,
        status=row["status"], created_at=row["created_at"], updated_at=row["updated_at"],
        decided_at=row["decided_at"], decided_by=row["decided_by"], applied_price_id=row["applied_price_id"],
    )


def audit_out(row: asyncpg.Record) -> AuditOut:
    return AuditOut(
        id=row["id"], at=row["at"], actor=row["actor"], request_id=row["request_id"], action=row["action"],
        entity_kind=row["entity_kind"], entity_id=row["entity_id"], version=row["version"],
        before=orjson.loads(row["before"]) if row["before"] else None,
        after=orjson.loads(row["after"]) if row["after"] else None, note=row["note"],
    )
