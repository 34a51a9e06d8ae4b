"""What every feed format is turned into: ``FeedEntry`` rows and per-entry ``EntryError``s.

Feeds quote prices in USD *per token* — LiteLLM as JSON numbers (``2.5e-06``, read as ``Decimal``, see
``fetch``), OpenRouter as decimal strings (``"0.0000025"``). Per token × 10¹² is micro-USD per 1M
tokens, the catalog's unit; a feed price is accepted only if that product is an exact non-negative
integer no larger than the absurd-price bound. Nothing is rounded: a finer price is an entry error.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from services.catalog.sync.sources import SyncSource
from services.common.money import format_micros

MICROS_PER_MTOK_PER_USD_PER_TOKEN = Decimal(10) ** 12
MAX_ENTRIES = 50_000
MAX_NAME = 256


class FeedError(Exception):
    """The whole feed is refused; ``str(exc)`` says why (for the report, never echoing the feed)."""


class EntryInvalid(ValueError):
    """One entry of a feed cannot be used; the message says why."""


@dataclass(frozen=True)
class FeedPrice:
    """Micro-USD per 1M tokens per kind; None = the feed does not say (the current amount is kept)."""

    input: int
    output: int
    cached_input: int | None = None
    cache_write: int | None = None
    batch_discount_bps: int | None = None


@dataclass(frozen=True)
class FeedEntry:
    name: str  # the name in the feed, after ``strip_prefix``: matched against catalog ids
    upstream_id: str  # the name as the provider knows it (a deployment's upstream_model)
    price: FeedPrice | None = None
    display_name: str | None = None
    description: str | None = None
    context_length: int | None = None
    max_output_tokens: int | None = None
    input_modalities: tuple[str, ...] | None = None
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntryError:
    name: str | None  # None when the entry is too broken to have a name
    reason: str


@dataclass
class ParsedFeed:
    entries: list[FeedEntry] = field(default_factory=list)
    errors: list[EntryError] = field(default_factory=list)
    skipped: int = 0  # not selected (include, prefix, provider) or not priced per token


def selected(source: SyncSource, raw_name: str) -> str | None:
    """The catalog-side name of a feed name this source wants, or None to skip it."""
    if not any(fnmatch.fnmatchcase(raw_name, pattern) for pattern in source.include):
        return None
    if source.strip_prefix:
        if not raw_name.startswith(source.strip_prefix):
            return None
        return raw_name[len(source.strip_prefix):]
    return raw_name


def usd_per_token(value: object, what: str, max_micros: int) -> int:
    """A per-token USD amount (a Decimal from JSON, an int, or a decimal string) → micros per 1M tokens."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise EntryInvalid(f"{what} is not a number")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise EntryInvalid(f"{what} is not a number") from None
    if not amount.is_finite():
        raise EntryInvalid(f"{what} is not a finite number")
    if amount < 0:
        raise EntryInvalid(f"{what} is negative")
    micros = amount * MICROS_PER_MTOK_PER_USD_PER_TOKEN
    if micros > max_micros:
        raise EntryInvalid(
            f"{what} is above the largest accepted price ({format_micros(max_micros)} USD per 1M tokens)"
        )
    if micros != micros.to_integral_value():
        raise EntryInvalid(f"{what} is finer than 0.000001 USD per 1M tokens")
    return int(micros)


def optional_int(entry: dict[str, Any], key: str, *, upper: int = 100_000_000) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EntryInvalid(f"{key} is not an integer")
    if not 0 < value <= upper:
        raise EntryInvalid(f"{key} is out of range")
    return value


def optional_text(entry: dict[str, Any], key: str, limit: int) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EntryInvalid(f"{key} is not a string")
    return value[:limit]


def text_list(value: object, key: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value):
        raise EntryInvalid(f"{key} is not a list of short strings")
    return tuple(dict.fromkeys(value))[:32]


def name_of(raw: object) -> str:
    if not isinstance(raw, str) or not 0 < len(raw) <= MAX_NAME:
        raise EntryInvalid("the model name is not a string of 1 to 256 characters")
    return raw


def check_count(count: int) -> None:
    if count > MAX_ENTRIES:
        raise FeedError(f"the feed lists {count} models; more than {MAX_ENTRIES} is not a model feed")
