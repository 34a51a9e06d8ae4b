"""A provider's model list, ``GET <base URL>/models``: which models it serves (no prices).

OpenAI-compatible servers answer ``{"object": "list", "data": [{"id", "object": "model", "created",
"owned_by"}]}``; Anthropic's list has the same ``data[].id`` (plus ``display_name``); vLLM and others
add ``max_model_len`` or ``context_length``, used when present. Extra fields are ignored.
"""

from __future__ import annotations

from typing import Any

from services.catalog.sync.feed import (
    EntryError,
    EntryInvalid,
    FeedEntry,
    FeedError,
    ParsedFeed,
    check_count,
    name_of,
    optional_int,
    optional_text,
    selected,
)
from services.catalog.sync.sources import SyncSource


def parse(document: Any, source: SyncSource, max_micros: int) -> ParsedFeed:
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise FeedError('a model list is a JSON object with a "data" list (GET /v1/models)')
    items: list[Any] = document["data"]
    check_count(len(items))
    feed = ParsedFeed()
    for item in items:
        try:
            if not isinstance(item, dict):
                raise EntryInvalid("a model is not an object")
            raw_name = name_of(item.get("id"))
        except EntryInvalid as exc:
            feed.errors.append(EntryError(None, str(exc)))
            continue
        name = selected(source, raw_name)
        if name is None:
            feed.skipped += 1
            continue
        try:
            name_of(name)
            context = optional_int(item, "context_length") or optional_int(item, "max_model_len")
            feed.entries.append(FeedEntry(
                name=name, upstream_id=raw_name, display_name=optional_text(item, "display_name", 200),
                context_length=context, capabilities=("chat", "streaming"),
            ))
        except EntryInvalid as exc:
            feed.errors.append(EntryError(name, str(exc)))
    return feed
