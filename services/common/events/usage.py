"""usage.v1 — one event per admitted request, emitted by the edge from a ``finally`` path.

Keyed by account id. Idempotency key: ``request_id`` (a redelivery or replay must not double count).
Token counts come from the backend; cost is NOT on the event: metering prices it once, at the price
version the edge saw at request time (``price_version``), so replays price identically.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from services.common.events.base import Event, Id, NonNegative, UtcDatetime

UsageStatus = Literal["ok", "error", "cancelled", "client_disconnected", "rejected"]
Api = Literal[
    "openai.chat_completions",
    "openai.completions",
    "openai.embeddings",
    "openai.responses",
    "anthropic.messages",
    "partner.generate",
    "batch",
]


class TokenCounts(Event):
    """Normalised across backends; ``input`` excludes cached and cache-write tokens."""

    input: NonNegative = 0
    cached_input: NonNegative = 0
    cache_write: NonNegative = 0
    output: NonNegative = 0
    reasoning: NonNegative = 0  # part of output, reported separately (never added twice)

    @model_validator(mode="after")
    def _reasoning_within_output(self) -> TokenCounts:
        if self.reasoning > self.output:
            raise ValueError("reasoning tokens are part of output and cannot exceed it")
        return self


class UsageEventV1(Event):
    schema_: Literal["usage.v1"] = Field(default="usage.v1", alias="schema")
    request_id: Id
    account_id: Id
    key_id: Id
    api: Api
    model_requested: str = Field(min_length=1, max_length=256)
    model_served: str = Field(min_length=1, max_length=256)
    deployment_id: Id | None = None
    provider: str = Field(min_length=1, max_length=64)
    price_version: Id | None = None
    tokens: TokenCounts
    status: UsageStatus
    error_type: str | None = Field(default=None, max_length=64)
    streamed: bool = False
    batch: bool = False
    started_at: UtcDatetime
    ttft_ms: NonNegative | None = None
    duration_ms: NonNegative
    edge_id: str = Field(min_length=1, max_length=128)
    attempts: int = Field(default=1, ge=1, le=16, description="backend attempts, fallbacks included")
