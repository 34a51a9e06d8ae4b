from __future__ import annotations

import os
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.catalog.sync.sources import SyncSource
from services.common.money import parse_micros
from services.common.settings import ServiceSettings

UnknownModelPolicy = Literal["ignore", "add-disabled", "add"]


class CatalogSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_")

    http_port: int = Field(default=8094, ge=0, le=65535)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(
        default=50054, ge=0, le=65535, description="tollgate.manage.v1.ManagementService (the edge calls it)"
    )
    database_url: str = Field(
        default="postgresql://postgres:tollgate@127.0.0.1:5432/tollgate_catalog",
        pattern=r"^postgres(ql)?://",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    outbox_interval_seconds: float = Field(
        default=1.0, gt=0, le=60,
        description="how often catalog.v1's outbox is swept for changes not yet published (Kafka was down)",
    )
    publish_wait_seconds: float = Field(
        default=2.0, ge=0, le=30,
        description="how long a management request waits for its catalog.v1 events before answering anyway",
    )
    max_price_per_mtok: str = Field(
        default="1000",
        description="largest accepted amount, USD per 1M tokens (decimal string); above it a price is absurd",
    )
    sync_sources: tuple[SyncSource, ...] = Field(
        default=(), description="JSON list of feeds the scheduled sync imports (see docs/catalog.md)"
    )
    sync_interval_seconds: float = Field(
        default=3600.0, ge=0, le=7 * 86_400, description="scheduled sync period; 0 = on demand only"
    )
    sync_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    sync_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    sync_max_change_factor: Decimal = Field(
        default=Decimal(2), gt=1, le=1000,
        description="a synced price moving by more than this factor (either way) is held for review",
    )
    sync_unknown_models: UnknownModelPolicy = Field(
        default="ignore", description="what a sync does with a model the catalog does not know"
    )

    @field_validator("max_price_per_mtok")
    @classmethod
    def _usd(cls, value: str) -> str:
        if parse_micros(value, "CATALOG_MAX_PRICE_PER_MTOK") <= 0:
            raise ValueError("CATALOG_MAX_PRICE_PER_MTOK must be above zero")
        return value

    @property
    def max_price_micros(self) -> int:
        """The absurd-price bound in micro-USD per 1M tokens."""
        return parse_micros(self.max_price_per_mtok)


def credential(env_name: str | None) -> str | None:
    """The secret a sync source names by its variable (``credentials_env``), read here because only
    settings modules read the environment; None when unnamed or unset."""
    if env_name is None:
        return None
    return os.environ.get(env_name) or None
