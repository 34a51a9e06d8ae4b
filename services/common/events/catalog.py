"""catalog.v1 — compacted; key = ``<kind>:<id>``; value = the current state of one catalog entity.

Edge and router keep snapshots. Prices are integer micro-USD per 1M tokens (exact for any public
price quoted to 6 decimals per 1M tokens) and each carries the version that usage is priced at.

Fields added after the first release all have defaults, so a record written before them still parses;
consumers forbid unknown fields, so they are upgraded before the catalog publishes a new one.
A model the catalog holds but does not serve (disabled) is published with ``deleted: true``: every
consumer already drops a deleted entity, so a disabled model can never be routed or listed.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from services.common.events.base import Event, Id, NonNegative, UtcDatetime


class ModelEntry(Event):
    kind: Literal["model"] = "model"
    id: Id
    display_name: str = Field(max_length=200)
    context_length: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    capabilities: tuple[str, ...] = ()
    chat_template: str | None = None
    deprecated_at: UtcDatetime | None = None
    sunset_at: UtcDatetime | None = None
    replacement: Id | None = None
    description: str = Field(default="", max_length=4000)
    category: str = Field(default="chat", max_length=64)
    tags: tuple[str, ...] = ()
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("text",)
    created_at: UtcDatetime | None = None  # when the catalog first held it (None: published before this)


# Opt-in API features of an OpenAI-compatible deployment (services/router/backends/openai_compat.py):
# top_k sent (vLLM, SGLang, llama.cpp, Together); the token limit as max_completion_tokens (OpenAI's
# own API); prompt_cache_key sent (OpenAI's own API); usage on every chunk (vLLM's
# stream_options.continuous_usage_stats), so a stream the client cuts is billed its prompt; vLLM's
# /tokenize, which counts a chat's tokens for /v1/messages/count_tokens and a cut stream's prompt; image
# URLs sent for the server to fetch (without it, only inline images: a self-hosted server fetches from
# inside the operator's network); OpenAI's /responses/input_tokens, which counts the same (its own API).
DeploymentFeature = Literal[
    "top_k", "max_completion_tokens", "prompt_cache_key", "continuous_usage", "tokenize", "image_urls",
    "input_tokens",
]
DEPLOYMENT_FEATURES: tuple[DeploymentFeature, ...] = get_args(DeploymentFeature)


class DeploymentEntry(Event):
    kind: Literal["deployment"] = "deployment"
    id: Id
    model_id: Id
    backend: Literal["triton", "openai", "anthropic"]
    endpoint: str = Field(min_length=1, max_length=512)
    upstream_model: str = Field(min_length=1, max_length=256)
    weight: NonNegative = 1
    fallback: tuple[Id, ...] = ()
    credentials_env: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")
    region: str | None = Field(default=None, max_length=64)
    tier: str | None = Field(default=None, max_length=64)
    # what an OpenAI-compatible server takes beyond OpenAI's common subset; None: decided by the endpoint
    features: tuple[DeploymentFeature, ...] | None = None


class PriceEntry(Event):
    kind: Literal["price"] = "price"
    id: Id  # the price version id
    model_id: Id
    effective_from: UtcDatetime
    input_micros_per_mtok: NonNegative
    cached_input_micros_per_mtok: NonNegative
    cache_write_micros_per_mtok: NonNegative
    output_micros_per_mtok: NonNegative
    # Batch (asynchronous) requests pay every amount above less this share, in basis points (5000 = 50 %)
    batch_discount_bps: int = Field(default=0, ge=0, le=10_000)


class AliasEntry(Event):
    kind: Literal["alias"] = "alias"
    id: Id
    target: Id


Entity = Annotated[ModelEntry | DeploymentEntry | PriceEntry | AliasEntry, Field(discriminator="kind")]


class CatalogEventV1(Event):
    schema_: Literal["catalog.v1"] = Field(default="catalog.v1", alias="schema")
    version: NonNegative
    deleted: bool = False
    entity: Entity
    updated_at: UtcDatetime

    @property
    def record_key(self) -> str:
        return f"{self.entity.kind}:{self.entity.id}"
