"""Request models of the catalog's management API, exactly as clients send them (pydantic v2, unknown
fields refused). Prices arrive as decimal strings of USD per 1M tokens and are converted here, at the
boundary, to integer micro-USD per 1M tokens; a JSON number is refused, never rounded. The batch
discount is a percentage string (``"50"``), stored as basis points.

Absent and ``null`` differ in PATCH bodies: absent leaves a field alone, ``null`` clears it (only the
nullable fields: deprecation, replacement, chat template). Handlers read ``model_fields_set`` for that.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal, Self

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

from services.catalog.records import check_features, discount_bps
from services.common.events.catalog import DEPLOYMENT_FEATURES, DeploymentFeature
from services.common.money import micros_from_wire


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _money(value: object, info: ValidationInfo) -> int:
    return micros_from_wire(value, info.field_name or "price", 'US dollars per 1M tokens such as "2.50"')


def _percent(value: object, info: ValidationInfo) -> int:
    if not isinstance(value, str):
        raise ValueError("batch_discount must be a percentage as a decimal string such as \"50\"")
    return discount_bps(value)


Name = Annotated[str, Field(min_length=1, max_length=200)]
ResourceId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-/]+$")]
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-/+ ]+$")]
Tokens = Annotated[int, Field(strict=True, gt=0, le=100_000_000)]
Money = Annotated[
    int,
    BeforeValidator(_money),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,6})?$", "examples": ["2.50"],
                    "description": "US dollars per 1M tokens, a decimal string (at most 6 decimals)"}),
]
Percent = Annotated[
    int,
    BeforeValidator(_percent),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,3}(\.[0-9]{1,2})?$", "examples": ["50"],
                    "description": "percent off every amount for batch requests, 0 to 100"}),
]
TRITON_ENDPOINT = r"^[A-Za-z0-9.\-]+:[0-9]{1,5}$"
HTTP_ENDPOINT = r"^https?://[^\s]+$"


def _deprecation(deprecated_at: datetime | None, sunset_at: datetime | None) -> None:
    if sunset_at is not None and deprecated_at is None:
        raise ValueError("sunset_at needs deprecated_at: a model is deprecated before it is retired")
    if sunset_at is not None and deprecated_at is not None and sunset_at < deprecated_at:
        raise ValueError("sunset_at must not be before deprecated_at")


def _no_nulls(model: BaseModel, *fields: str) -> None:
    for name in fields:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} cannot be null")


# --- models -----------------------------------------------------------------------------------

class ModelFields(WireModel):
    description: str = Field(default="", max_length=4000)
    category: Label = Field(default="chat", description="chat, completion, embedding, test, ...")
    tags: list[Label] = Field(default_factory=list, max_length=32)
    input_modalities: list[Label] = Field(default_factory=lambda: ["text"], min_length=1, max_length=8)
    output_modalities: list[Label] = Field(default_factory=lambda: ["text"], min_length=1, max_length=8)
    capabilities: list[Label] = Field(
        default_factory=list, max_length=32, description="chat, completions, streaming, tools, json_mode, "
        "vision, prompt_caching, reasoning, ...",
    )
    chat_template: str | None = Field(default=None, max_length=64, description="self-hosted models only")
    enabled: bool = Field(default=True, description="false: kept with its prices, but not served or listed")
    deprecated_at: AwareDatetime | None = None
    sunset_at: AwareDatetime | None = Field(default=None, description="after it, requests answer 410")
    replacement: ResourceId | None = Field(default=None, description="the model to use instead")


class ModelPut(ModelFields):
    """A whole model: fields left out take their defaults (PUT replaces)."""

    display_name: Name
    context_length: Tokens
    max_output_tokens: Tokens

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.max_output_tokens > self.context_length:
            raise ValueError("max_output_tokens must not exceed context_length")
        _deprecation(self.deprecated_at, self.sunset_at)
        return self


class ModelPatch(WireModel):
    """Only the fields sent change; ``null`` clears deprecated_at, sunset_at, replacement, chat_template."""

    display_name: Name | None = None
    description: str | None = Field(default=None, max_length=4000)
    category: Label | None = None
    tags: list[Label] | None = Field(default=None, max_length=32)
    input_modalities: list[Label] | None = Field(default=None, min_length=1, max_length=8)
    output_modalities: list[Label] | None = Field(default=None, min_length=1, max_length=8)
    capabilities: list[Label] | None = Field(default=None, max_length=32)
    context_length: Tokens | None = None
    max_output_tokens: Tokens | None = None
    chat_template: str | None = Field(default=None, max_length=64)
    enabled: bool | None = None
    deprecated_at: AwareDatetime | None = None
    sunset_at: AwareDatetime | None = None
    replacement: ResourceId | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _no_nulls(self, "display_name", "description", "category", "tags", "input_modalities",
                  "output_modalities", "capabilities", "context_length", "max_output_tokens", "enabled")
        return self


# --- prices -----------------------------------------------------------------------------------

class PriceCreate(WireModel):
    """A new price version. Amounts are USD per 1M tokens; cached input and cache writes cost what input
    costs unless given."""

    id: ResourceId | None = Field(default=None, description="the version id; default <model>-<time>-<hex>")
    effective_from: AwareDatetime | None = Field(
        default=None, description="when it takes effect: now (default) or later, never in the past"
    )
    input: Money
    output: Money
    cached_input: Money | None = None
    cache_write: Money | None = None
    batch_discount: Percent = 0


# --- deployments and aliases ------------------------------------------------------------------

class DeploymentPut(WireModel):
    backend: Literal["triton", "openai", "anthropic"]
    endpoint: str = Field(
        min_length=1, max_length=512,
        description="triton: host:port of its gRPC endpoint; openai/anthropic: the base URL",
    )
    upstream_model: str = Field(min_length=1, max_length=256, description="the model name the backend knows")
    weight: int = Field(default=1, strict=True, ge=0, le=1_000_000, description="0 = standby, never primary")
    fallback: list[ResourceId] = Field(default_factory=list, max_length=16,
                                       description="deployments to try next, in order")
    credentials_env: str | None = Field(
        default=None, pattern=r"^[A-Z][A-Z0-9_]*$", max_length=128,
        description="the NAME of the environment variable holding the provider key (never the key)",
    )
    region: Label | None = None
    tier: Label | None = None
    features: list[DeploymentFeature] | None = Field(
        default=None, max_length=len(DEPLOYMENT_FEATURES),
        description="openai deployments: what the server takes beyond OpenAI's common subset — top_k; "
                    "max_completion_tokens (the token limit's name); prompt_cache_key; continuous_usage "
                    "(usage on every chunk, vLLM: a stream the client cuts is billed its prompt); "
                    "tokenize (vLLM's /tokenize: /v1/messages/count_tokens counts on this server, and "
                    "a stream the client cuts is billed its prompt); "
                    "image_urls (image URLs are sent for the server to fetch; else only inline images); "
                    "input_tokens (OpenAI's /responses/input_tokens counts as tokenize does). "
                    "null: decided by the endpoint (OpenAI's own API: max_completion_tokens, "
                    "prompt_cache_key, image_urls and input_tokens; any other server: none)",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        check_features(self.backend, self.features)
        pattern = TRITON_ENDPOINT if self.backend == "triton" else HTTP_ENDPOINT
        if not re.match(pattern, self.endpoint):
            shape = "host:port" if self.backend == "triton" else "an http(s) base URL"
            raise ValueError(f"endpoint of a {self.backend} deployment must be {shape}")
        return self


class AliasPut(WireModel):
    target: ResourceId = Field(description="the model the alias resolves to (a model, not another alias)")


# --- sync and review --------------------------------------------------------------------------

class SyncRun(WireModel):
    source: str = Field(min_length=1, max_length=64, description="a source of CATALOG_SYNC_SOURCES")
    dry_run: bool = Field(default=False, description="report what would change; change nothing")


class Approve(WireModel):
    effective_from: AwareDatetime | None = Field(default=None, description="default now; never in the past")


class Reject(WireModel):
    reason: str = Field(default="", max_length=500)


# --- query strings ----------------------------------------------------------------------------

class Page(WireModel):
    limit: int = Field(default=20, ge=1, le=100)
    after: ResourceId | None = Field(default=None, description="the last id of the previous page")


class ModelQuery(Page):
    include_disabled: bool = Field(default=False, description="operator only")
    category: Label | None = None
    tag: Label | None = None


class PriceQuery(WireModel):
    at: AwareDatetime | None = Field(default=None, description="which version is in force at this time")


class PendingQuery(Page):
    status: Literal["pending", "approved", "rejected"] = "pending"


class AuditQuery(WireModel):
    kind: Literal["model", "deployment", "price", "alias", "pending_change"] | None = None
    entity_id: ResourceId | None = None
    limit: int = Field(default=50, ge=1, le=500)
    before: int | None = Field(default=None, ge=1, description="the smallest id of the previous page")


class SyncRunsQuery(WireModel):
    source: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=20, ge=1, le=100)
