"""OpenRouter's ``GET /api/v1/models``: ``{"data": [model, ...]}``, prices as decimal strings per token.

::

    {"data": [{"id": "openai/gpt-4o", "name": "OpenAI: GPT-4o", "description": "...",
               "context_length": 128000,
               "architecture": {"input_modalities": ["text", "image"], "output_modalities": ["text"]},
               "pricing": {"prompt": "0.0000025", "completion": "0.00001",
                           "input_cache_read": "0.00000125", "input_cache_write": "0", ...},
               "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
               "supported_parameters": ["tools", "response_format", ...]}, ...]}

Ids carry the provider (``openai/gpt-4o``): ``strip_prefix`` maps them to catalog ids. Per-request,
per-image and web-search prices are not token prices and are not imported.
"""

from __future__ import annotations

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
    optional_text,
    selected,
    text_list,
    usd_per_token,
)
from services.catalog.sync.sources import SyncSource

PARAMETERS = {"tools": "tools", "response_format": "json_mode", "structured_outputs": "json_mode",
              "reasoning": "reasoning"}


def _price(pricing: object, max_micros: int) -> FeedPrice:
    if not isinstance(pricing, dict):
        raise EntryInvalid("pricing is not an object")
    if pricing.get("prompt") is None or pricing.get("completion") is None:
        raise EntryInvalid("pricing has no prompt or no completion price")

    def optional(key: str) -> int | None:
        value = pricing.get(key)
        return None if value is None else usd_per_token(value, f"pricing.{key}", max_micros)

    return FeedPrice(
        input=usd_per_token(pricing["prompt"], "pricing.prompt", max_micros),
        output=usd_per_token(pricing["completion"], "pricing.completion", max_micros),
        cached_input=optional("input_cache_read"), cache_write=optional("input_cache_write"),
    )


def _entry(name: str, raw_name: str, item: dict[str, Any], max_micros: int) -> FeedEntry:
    architecture = item.get("architecture") or {}
    top = item.get("top_provider") or {}
    if not isinstance(architecture, dict) or not isinstance(top, dict):
        raise EntryInvalid("architecture or top_provider is not an object")
    parameters = text_list(item.get("supported_parameters"), "supported_parameters") or ()
    inputs = text_list(architecture.get("input_modalities"), "architecture.input_modalities")
    capabilities = ["chat", "streaming", *dict.fromkeys(PARAMETERS[p] for p in parameters if p in PARAMETERS)]
    if inputs is not None and "image" in inputs:
        capabilities.append("vision")
    return FeedEntry(
        name=name, upstream_id=raw_name, price=_price(item.get("pricing"), max_micros),
        display_name=optional_text(item, "name", 200), description=optional_text(item, "description", 4000),
        context_length=optional_int(item, "context_length"),
        max_output_tokens=optional_int(top, "max_completion_tokens"),
        input_modalities=inputs, capabilities=tuple(capabilities),
    )


def parse(document: Any, source: SyncSource, max_micros: int) -> ParsedFeed:
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise FeedError('an OpenRouter model list is a JSON object with a "data" list')
    items: list[Any] = document["data"]
    check_count(len(items))
    feed = ParsedFeed()
    for item in items:
        raw_name = item.get("id") if isinstance(item, dict) else None
        try:
            if not isinstance(item, dict):
                raise EntryInvalid("a model is not an object")
            raw_name = name_of(raw_name)
        except EntryInvalid as exc:
            feed.errors.append(EntryError(None, str(exc)))
            continue
        name = selected(source, raw_name)
        if name is None:
            feed.skipped += 1
            continue
        try:
            name_of(name)
            feed.entries.append(_entry(name, raw_name, item, max_micros))
        except EntryInvalid as exc:
            feed.errors.append(EntryError(name, str(exc)))
    return feed
