"""Query strings of the statement routes (unknown parameters refused)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StatementQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["json", "csv"] = Field(
        default="json", description="csv: the same statement as a CSV download (as a '.csv' suffix does)")
