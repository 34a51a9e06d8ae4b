"""The rules of price versions, in one place for the seed, the management API, sync and review.

A price is a version: an id, a model, an ``effective_from`` and integer micro-USD per 1M tokens per
token kind. Usage carries the id of the version it was admitted under, so a version's numbers never
change (a database trigger refuses it too) and history is never rewritten: a new version takes effect
now or later, never in the past — except when the seed loads the history of a model that has none yet
(the public list price "since launch"). The version in force at a time is the latest one whose
``effective_from`` has passed (the edge's ``CatalogView.current_price`` uses the same rule).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from services.catalog import store
from services.catalog.records import ModelRecord, PriceRecord
from services.catalog.store import Actor, Change, Conn
from services.common.errors import Conflict, InvalidRequest, NotFound
from services.common.money import format_micros

KINDS = ("input_micros_per_mtok", "cached_input_micros_per_mtok", "cache_write_micros_per_mtok",
         "output_micros_per_mtok")


def new_price_id(model_id: str, at: datetime) -> str:
    """``<model>-<UTC yyyymmddHHMMSS>-<4 hex>``: readable in usage rows, unique without a lookup."""
    return f"{model_id[:96]}-{at.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"


def check_bounds(price: PriceRecord, max_micros: int) -> None:
    """Refuse an absurd amount (above ``CATALOG_MAX_PRICE_PER_MTOK``)."""
    for kind in KINDS:
        if getattr(price, kind) > max_micros:
            name = kind.removesuffix("_micros_per_mtok")
            raise InvalidRequest(
                f"{name} is above the largest accepted price, {format_micros(max_micros)} USD per 1M tokens",
                param=name, code="price_out_of_bounds",
            )


async def add_version(
    conn: Conn, price: PriceRecord, actor: Actor, *, max_micros: int, history_ok: bool = False,
    note: str = "",
) -> Change:
    """Validate and insert one new version (inside the caller's transaction). The same id with the same
    content is a no-op, so re-running a seed or replaying a request is harmless."""
    check_bounds(price, max_micros)
    model = await store.get(conn, ModelRecord, price.model_id, lock=True)  # serialises a model's versions
    if model is None:
        raise NotFound(f"No model {price.model_id!r} in the catalog.", param="model_id",
                       code="model_not_found")
    existing = await store.get(conn, PriceRecord, price.id)
    if existing is not None:
        same = existing.record.model_dump(exclude={"source"}) == price.model_dump(exclude={"source"})
        if same:
            return Change(None, existing.version)
        raise Conflict(
            f"Price version {price.id} already exists with other numbers; a version never changes, "
            "add a new version instead.", param="id", code="price_version_exists",
        )
    now: datetime = await conn.fetchval("SELECT now()")
    if price.effective_from < now:
        # history may be loaded only into a model with no version from an earlier transaction (a
        # fresh seed): anything else would change which price was in force at a time already past
        has_history = await conn.fetchval(
            "SELECT 1 FROM prices WHERE model_id = $1 AND created_at < now() LIMIT 1", price.model_id
        )
        if has_history or not history_ok:
            raise InvalidRequest(
                "effective_from must not be in the past: a price in force is never rewritten "
                "(leave it out to take effect now).", param="effective_from", code="price_in_the_past",
            )
    clash = await conn.fetchval(
        "SELECT id FROM prices WHERE model_id = $1 AND effective_from = $2",
        price.model_id, price.effective_from,
    )
    if clash is not None:
        raise Conflict(
            f"Price version {clash} already takes effect at that time; choose another effective_from.",
            param="effective_from", code="price_version_exists",
        )
    return await store.add_price(conn, price, actor, note)
