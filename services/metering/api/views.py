"""Answers of the usage API (pydantic, rendered as JSON). Money is a decimal string of USD with six
decimals (``services.common.money.format_micros``), never a JSON number."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.metering.api.wire import Dimension, GroupBy


class View(BaseModel):
    # every field of an answer is always sent, nulls included: the schema says so
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)


class UsageTotals(View):
    requests: int
    failed_requests: int = Field(description="requests that ended with status error")
    input_tokens: int = Field(description="uncached input tokens (cached and cache-write are apart)")
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int = Field(description="reasoning tokens included")
    reasoning_tokens: int
    cost: str = Field(examples=["0.001500"], description="US dollars, priced once per request at ingestion")


class UsageRow(UsageTotals):
    """One bucket's usage, for one combination of the ``breakdown`` dimensions (null when not split)."""

    account_id: str | None
    key_id: str | None
    model: str | None


class UsageBucket(View):
    object: Literal["bucket"] = "bucket"
    start: datetime = Field(description="inclusive")
    end: datetime = Field(description="exclusive")
    results: list[UsageRow] = Field(description="empty when there was no usage in the bucket")


class UsageView(View):
    object: Literal["usage"] = "usage"
    start: datetime = Field(alias="from", serialization_alias="from")
    end: datetime = Field(alias="to", serialization_alias="to")
    group_by: GroupBy
    breakdown: list[Dimension]
    data: list[UsageBucket]
    totals: UsageTotals

