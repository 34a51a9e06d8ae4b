"""keys.v1 — compacted; key = key id; value = the full current state of one API key (or a tombstone).

Each edge rebuilds an in-memory snapshot from this topic at start and follows it, so authentication
never touches the database. The event is self-contained (key + its plan's limits + its account's
status) so that an edge needs no join. ``version`` increases with every change of the key, its plan or
its account; an edge ignores a version older than the one it holds. Only the keyed hash of the secret
travels, never the secret.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.common.events.base import Event, Id, NonNegative, UtcDatetime

KeyStatus = Literal["active", "disabled", "revoked"]
KeyKind = Literal["inference", "management"]
AccountStatus = Literal["active", "suspended"]
BillingMode = Literal["prepaid", "subscription", "invoice"]


class Limits(Event):
    """Effective limits (plan, with the key's overrides applied). ``None`` means unlimited."""

    requests_per_minute: NonNegative | None = None
    tokens_per_minute: NonNegative | None = None
    max_concurrency: NonNegative | None = None
    budget_micros: NonNegative | None = None  # integer micro-USD per window
    budget_window_seconds: int | None = Field(default=None, gt=0)
    allowed_models: tuple[str, ...] | None = None  # ids or glob patterns; None = all


class KeyEventV1(Event):
    schema_: Literal["keys.v1"] = Field(default="keys.v1", alias="schema")
    key_id: Id
    version: NonNegative
    account_id: Id
    plan_id: Id
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="HMAC-SHA256 of the secret, hex")
    prefix: str = Field(min_length=3, max_length=16)
    name: str = Field(max_length=200)
    status: KeyStatus
    kind: KeyKind = Field(
        default="inference",
        description="inference keys call the public API; management keys call /v1/manage for their account",
    )
    account_status: AccountStatus
    billing: BillingMode = "invoice"
    limits: Limits
    expires_at: UtcDatetime | None = None
    plan_expires_at: UtcDatetime | None = None
    updated_at: UtcDatetime
