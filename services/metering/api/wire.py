"""The usage API's query string as clients send it (pydantic v2, unknown parameters refused; parsed by
``services.common.manage.validation``).

Times are RFC 3339 with an offset (``2026-11-01T10:00:00Z``) or a plain date (``2026-11-01`` = midnight
UTC), on a whole minute: usage is kept per minute, so a finer bound could not be honoured exactly and is
refused rather than silently rounded. Validators' messages are whole sentences naming the parameter
(the kit uses them as they are) and never echo the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# "+00:00" arrives as " 00:00" when a client forgets to encode "+" (form encoding reads it as a space)
_SPACE_OFFSET = re.compile(r"^(.*T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")

GroupBy = Literal["minute", "hour", "day", "none"]
Dimension = Literal["account", "key", "model"]
DIMENSIONS: tuple[str, ...] = get_args(Dimension)


def _parse_time(text: str, param: str) -> datetime:
    if _DATE.match(text):
        try:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        except ValueError:
            raise ValueError(f"'{param}' is not a valid date (YYYY-MM-DD).") from None
    spaced = _SPACE_OFFSET.match(text)
    if spaced:
        text = f"{spaced.group(1)}+{spaced.group(2)}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{param}' is not an RFC 3339 time such as \"2026-11-01T10:00:00Z\" or a date "
                         "such as \"2026-11-01\".") from None
    if parsed.tzinfo is None:
        raise ValueError(f"'{param}' needs a UTC offset, such as \"Z\" or \"+02:00\".")
    return parsed.astimezone(UTC)


def _timestamp(param: str) -> Callable[[object], datetime]:
    def validate(value: object) -> datetime:
        if not isinstance(value, str):
            raise ValueError(f"'{param}' must be an RFC 3339 time (\"2026-11-01T10:00:00Z\") or a date.")
        parsed = _parse_time(value.strip(), param)
        if parsed.second or parsed.microsecond:
            raise ValueError(f"'{param}' must be on a whole minute (usage is kept per minute).")
        if not EARLIEST <= parsed < LATEST:
            raise ValueError(f"'{param}' must be between 2000-01-01 and 2200-01-01.")
        return parsed

    return validate


def _dimensions(value: object) -> tuple[str, ...]:
    if isinstance(value, tuple | list):
        return tuple(str(v) for v in value)
    wrong = "'breakdown' must be a comma-separated list of account, key, model."
    if not isinstance(value, str):
        raise ValueError(wrong)
    parts = tuple(p.strip() for p in value.split(",")) if value.strip() else ()
    if any(p not in DIMENSIONS for p in parts):
        raise ValueError(wrong)
    if len(set(parts)) != len(parts):
        raise ValueError("'breakdown' names a dimension twice.")
    return parts


_TIME_SCHEMA = {"type": "string", "examples": ["2026-11-01T00:00:00Z", "2026-11-01"],
                "description": "RFC 3339 with an offset, or a date (midnight UTC); on a whole minute"}
From = Annotated[datetime, BeforeValidator(_timestamp("from")), WithJsonSchema(_TIME_SCHEMA)]
To = Annotated[datetime, BeforeValidator(_timestamp("to")), WithJsonSchema(_TIME_SCHEMA)]
Breakdown = Annotated[
    tuple[Dimension, ...],
    BeforeValidator(_dimensions),
    WithJsonSchema({"type": "string", "pattern": r"^((account|key|model)(,(account|key|model)){0,2})?$",
                    "examples": ["model", "key,model"],
                    "description": "split each bucket by these dimensions (comma-separated)"}),
]
ResourceId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-/]+$")]


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    account_id: ResourceId | None = Field(
        default=None, description="an account-scoped caller may omit it (its own) or name its own only"
    )
    key_id: ResourceId | None = None
    model: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:/@\-]+$",
        description="the model that served the requests (what they were priced as)",
    )
    start: From = Field(alias="from", description="start of the period (inclusive)")
    end: To | None = Field(
        default=None, alias="to",
        description="end of the period (exclusive); default: the end of the current minute",
    )
    group_by: GroupBy = Field(default="none", description="bucket width; none = one bucket, the totals")
    breakdown: Breakdown = ()
