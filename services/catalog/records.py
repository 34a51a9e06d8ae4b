"""The catalog's four entities as its tables hold them: one pydantic model per table, whose fields *are*
the table's content columns (a test checks them against ``information_schema``), and the conversion to
what catalog.v1 publishes.

The outbox columns (``state_version``, ``published_version``), the soft-delete flag and the
timestamps are bookkeeping, not content: they are not fields here, and a change is "no change" when
the content fields are equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Self

import asyncpg
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.common.events.catalog import (
    DEPLOYMENT_FEATURES,
    AliasEntry,
    DeploymentEntry,
    DeploymentFeature,
    ModelEntry,
    PriceEntry,
)

Kind = Literal["model", "deployment", "price", "alias"]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-/]+$")]
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-/+ ]+$")]
Micros = Annotated[int, Field(ge=0)]


def discount_bps(value: object, what: str = "batch_discount") -> int:
    """``"50"`` (percent, at most 2 decimals) → 5000 basis points."""
    if isinstance(value, bool | float) or not isinstance(value, str | int):
        raise ValueError(f"{what} must be a percentage as a decimal string such as \"50\"")
    try:
        percent = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{what} is not a decimal number") from None
    if not percent.is_finite() or not 0 <= percent <= 100:
        raise ValueError(f"{what} must be between 0 and 100 (percent)")
    bps = percent * 100
    if bps != bps.to_integral_value():
        raise ValueError(f"{what} has more than 2 decimal places")
    return int(bps)


def check_features(backend: str, features: Sequence[str] | None) -> None:
    """A deployment's ``features`` describe an OpenAI-compatible server's API, each named once."""
    if features is not None and backend != "openai":
        raise ValueError("features apply to openai deployments only")
    if features is not None and len(set(features)) != len(features):
        raise ValueError("features must not repeat")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id

    def columns(self) -> dict[str, Any]:
        """Column → value, without ``id`` (tuples become lists, which is what asyncpg sends as arrays)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_dump(exclude={"id"}).items()}

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Any:
        return cls.model_validate({name: row[name] for name in cls.model_fields})


class ModelRecord(Record):
    display_name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    category: Label = "chat"
    tags: tuple[Label, ...] = Field(default=(), max_length=32)
    input_modalities: tuple[Label, ...] = Field(default=("text",), max_length=8)
    output_modalities: tuple[Label, ...] = Field(default=("text",), max_length=8)
    capabilities: tuple[Label, ...] = Field(default=(), max_length=32)
    context_length: int = Field(gt=0, le=100_000_000)
    max_output_tokens: int = Field(gt=0, le=100_000_000)
    chat_template: str | None = Field(default=None, max_length=64)
    enabled: bool = True
    deprecated_at: AwareDatetime | None = None
    sunset_at: AwareDatetime | None = None
    replacement: Id | None = None

    def entry(self) -> ModelEntry:
        return ModelEntry(**self.model_dump(exclude={"enabled"}))


class DeploymentRecord(Record):
    model_id: Id
    backend: Literal["triton", "openai", "anthropic"]
    endpoint: str = Field(min_length=1, max_length=512)
    upstream_model: str = Field(min_length=1, max_length=256)
    weight: int = Field(default=1, ge=0, le=1_000_000)
    fallback: tuple[Id, ...] = Field(default=(), max_length=16)
    credentials_env: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$", max_length=128)
    region: Label | None = None
    tier: Label | None = None
    features: tuple[DeploymentFeature, ...] | None = Field(default=None, max_length=len(DEPLOYMENT_FEATURES))

    @model_validator(mode="after")
    def _features_of_openai_servers(self) -> Self:
        check_features(self.backend, self.features)
        return self

    def entry(self) -> DeploymentEntry:
        return DeploymentEntry(**self.model_dump())


class PriceRecord(Record):
    model_id: Id
    effective_from: AwareDatetime
    input_micros_per_mtok: Micros
    cached_input_micros_per_mtok: Micros
    cache_write_micros_per_mtok: Micros
    output_micros_per_mtok: Micros
    batch_discount_bps: int = Field(default=0, ge=0, le=10_000)
    source: str = Field(default="api", max_length=140)

    def entry(self) -> PriceEntry:
        return PriceEntry(**self.model_dump(exclude={"source"}))

    def amounts(self) -> tuple[int, int, int, int, int]:
        """What makes two versions the same price (input, cached, cache write, output, batch)."""
        return (self.input_micros_per_mtok, self.cached_input_micros_per_mtok,
                self.cache_write_micros_per_mtok, self.output_micros_per_mtok, self.batch_discount_bps)

    @property
    def paid(self) -> bool:
        return self.input_micros_per_mtok > 0 or self.output_micros_per_mtok > 0


class AliasRecord(Record):
    target: Id

    def entry(self) -> AliasEntry:
        return AliasEntry(**self.model_dump())


AnyRecord = ModelRecord | DeploymentRecord | PriceRecord | AliasRecord
RECORDS: dict[Kind, type[Record]] = {
    "model": ModelRecord, "deployment": DeploymentRecord, "price": PriceRecord, "alias": AliasRecord,
}
TABLES: dict[Kind, str] = {
    "model": "models", "deployment": "deployments", "price": "prices", "alias": "aliases",
}
KIND_OF: dict[type[Record], Kind] = {cls: kind for kind, cls in RECORDS.items()}
# bookkeeping columns each table has besides the record's fields (a test ties the two together)
BOOKKEEPING: dict[Kind, frozenset[str]] = {
    "model": frozenset({"state_version", "published_version", "created_at", "updated_at"}),
    "deployment": frozenset({"state_version", "published_version", "deleted", "created_at", "updated_at"}),
    "price": frozenset({"state_version", "published_version", "created_at"}),
    "alias": frozenset({"state_version", "published_version", "deleted", "created_at", "updated_at"}),
}


def kind_of(record: Record) -> Kind:
    return KIND_OF[type(record)]


def published_deleted(kind: Kind, row: asyncpg.Record) -> bool:
    """Whether catalog.v1 says this entity is gone: deleted rows, and disabled models."""
    if kind == "model":
        return not row["enabled"]
    if kind in ("deployment", "alias"):
        return bool(row["deleted"])
    return False


def as_json(record: Record) -> dict[str, Any]:
    """The audit trail's and the review queue's JSON form of a record."""
    return record.model_dump(mode="json")
