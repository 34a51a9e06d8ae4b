"""requests.v1 — one event per request at admission (admitted or refused), before any backend work.

Keyed by account id. Carries metadata only: never prompt text. Useful to operators (who was refused,
why) and to metering for join/latency analysis; billing never charges from it (usage.v1 does that).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.common.events.base import Event, Id, NonNegative, UtcDatetime
from services.common.events.usage import Api

Decision = Literal["admitted", "rejected"]


class RequestEventV1(Event):
    schema_: Literal["requests.v1"] = Field(default="requests.v1", alias="schema")
    request_id: Id
    account_id: Id | None = None  # None when authentication itself failed
    key_id: Id | None = None
    api: Api
    model: str = Field(min_length=1, max_length=256)
    stream: bool = False
    decision: Decision
    reject_code: str | None = Field(default=None, max_length=64)
    reserved_input_tokens: NonNegative = 0
    reserved_output_tokens: NonNegative = 0
    reserved_cost_micros: NonNegative = 0  # integer micro-USD (promise 3)
    received_at: UtcDatetime
    edge_id: str = Field(min_length=1, max_length=128)
