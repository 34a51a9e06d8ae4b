"""Base class of every event: strict (unknown fields are an error), immutable, JSON on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

NonNegative = Annotated[int, Field(ge=0)]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-/]+$")]


def _require_tz(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a timezone (UTC)")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_require_tz)]


class Event(BaseModel):
    """An event as it travels on a topic. ``schema_`` names the topic version it belongs to."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_bytes(self) -> bytes:
        # pydantic-core writes the JSON itself: the same bytes as orjson over model_dump(mode="json"),
        # without building the intermediate dict (half the cost on the edge's per-request events)
        return self.__pydantic_serializer__.to_json(self, by_alias=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        return cls.model_validate_json(data)
