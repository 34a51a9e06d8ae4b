"""LiteLLM's ``model_prices_and_context_window.json``: one object keyed by model name.

::

    {"gpt-4o": {"litellm_provider": "openai", "mode": "chat", "max_input_tokens": 128000,
                "max_output_tokens": 16384, "input_cost_per_token": 2.5e-06,
                "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06,
                "input_cost_per_token_batches": 1.25e-06, "output_cost_per_token_batches": 5e-06,
                "supports_function_calling": true, "supports_vision": true, ...}, ...}

Entries for other providers (``source.provider``), other modes (images, audio, rerank …), entries
without per-token prices and the ``sample_spec`` documentation entry are skipped, not errors. Fields
we do not use are ignored; a field we use with the wrong type makes the entry an error.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from services.catalog.sync.feed import (
    EntryError,
    EntryInvalid,
    FeedEntry,
    FeedError,
    FeedPrice,
    ParsedFeed,
    check_count,
    name_of,
    optional_int,
    selected,
    usd_per_token,
)
from services.catalog.sync.sources import SyncSource

TOKEN_MODES = {"chat": ("chat", "streaming"), "completion": ("completions", "streaming"),
               "responses": ("chat", "streaming"), "embedding": ("embeddings",)}
FLAGS = {"supports_function_calling": "tools", "supports_response_schema": "json_mode",
         "supports_vision": "vision", "supports_prompt_caching": "prompt_caching",
         "supports_reasoning": "reasoning"}


def _batch_discount(entry: dict[str, Any], price: FeedPrice, max_micros: int) -> int | None:
    """Basis points off, when the feed's batch prices are one exact discount of both amounts."""
    raw_in, raw_out = entry.get("input_cost_per_token_batches"), entry.get("output_cost_per_token_batches")
    if raw_in is None or raw_out is None or price.input == 0 or price.output == 0:
        return None
    batch_in = usd_per_token(raw_in, "input_cost_per_token_batches", max_micros)
    batch_out = usd_per_token(raw_out, "output_cost_per_token_batches", max_micros)
    shares = {Decimal(batch_in) / price.input, Decimal(batch_out) / price.output}
    if len(shares) != 1:
        return None
    bps = (1 - shares.pop()) * 10_000
    return int(bps) if bps == bps.to_integral_value() and 0 <= bps <= 10_000 else None


def _entry(name: str, raw_name: str, entry: dict[str, Any], max_micros: int) -> FeedEntry | None:
    mode = entry.get("mode", "chat")
    if not isinstance(mode, str):
        raise EntryInvalid("mode is not a string")
    if mode not in TOKEN_MODES:
        return None
    raw_in, raw_out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if raw_in is None and raw_out is None:
        return None  # not priced per token
    if raw_in is None or (raw_out is None and mode != "embedding"):
        raise EntryInvalid("has an input or an output price but not both")
    price = FeedPrice(
        input=usd_per_token(raw_in, "input_cost_per_token", max_micros),
        output=usd_per_token(raw_out if raw_out is not None else 0, "output_cost_per_token", max_micros),
        cached_input=(None if entry.get("cache_read_input_token_cost") is None else usd_per_token(
            entry["cache_read_input_token_cost"], "cache_read_input_token_cost", max_micros)),
        cache_write=(None if entry.get("cache_creation_input_token_cost") is None else usd_per_token(
            entry["cache_creation_input_token_cost"], "cache_creation_input_token_cost", max_micros)),
    )
    price = replace(price, batch_discount_bps=_batch_discount(entry, price, max_micros))
    capabilities = list(TOKEN_MODES[mode])
    for flag, capability in FLAGS.items():
        value = entry.get(flag)
        if value is not None and not isinstance(value, bool):
            raise EntryInvalid(f"{flag} is not a boolean")
        if value:
            capabilities.append(capability)
    return FeedEntry(
        name=name, upstream_id=raw_name, price=price,
        context_length=optional_int(entry, "max_input_tokens"),
        max_output_tokens=optional_int(entry, "max_output_tokens"),
        input_modalities=("text", "image") if entry.get("supports_vision") is True else ("text",),
        capabilities=tuple(capabilities),
    )


def parse(document: Any, source: SyncSource, max_micros: int) -> ParsedFeed:
    if not isinstance(document, dict):
        raise FeedError("a LiteLLM price feed is a JSON object keyed by model name")
    check_count(len(document))
    feed = ParsedFeed()
    for raw_name, entry in document.items():
        name = selected(source, raw_name) if raw_name != "sample_spec" else None
        if name is None:
            feed.skipped += 1
            continue
        try:
            name_of(name)
            if not isinstance(entry, dict):
                raise EntryInvalid("the entry is not an object")
            provider = entry.get("litellm_provider")
            if source.provider is not None and provider != source.provider:
                feed.skipped += 1
                continue
            parsed = _entry(name, raw_name, entry, max_micros)
        except EntryInvalid as exc:
            feed.errors.append(EntryError(name[:256], str(exc)))
            continue
        if parsed is None:
            feed.skipped += 1
        else:
            feed.entries.append(parsed)
    return feed
