"""A model's price versions: list them (with the one in force at a given time), add one.

There is no PUT or DELETE: a version never changes once made (usage carries its id). To correct a
scheduled version, add another that takes effect just after it; the latest effective_from wins.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from services.catalog import prices, store
from services.catalog.manage.context import Deps, actor, require_admin
from services.catalog.manage.models import check_id, visible_model
from services.catalog.manage.views import PriceList, price_out
from services.catalog.manage.wire import PriceCreate, PriceQuery
from services.catalog.records import PriceRecord
from services.common.manage.context import Call, Reply

log = structlog.get_logger(__name__)


async def list_prices(deps: Deps, call: Call) -> Reply:
    model_id = check_id(call.params["id"])
    at = call.query_as(PriceQuery).at
    async with deps.pool.acquire() as conn:
        await visible_model(conn, call, model_id)
        now: datetime = await conn.fetchval("SELECT now()")
        versions = await store.prices_of(conn, model_id)
        in_force = await store.price_in_force(conn, model_id, at)
    current = _current_id(versions, now)
    data = [price_out(v.record, v.version, current, now) for v in versions]
    return Reply(200, PriceList(data=data, has_more=False, in_force=in_force.id if in_force else None))


def _current_id(versions: list[store.Stored], now: datetime) -> str | None:
    live = [v.record for v in versions if v.record.effective_from <= now]
    return live[-1].id if live else None  # versions come oldest effective first


async def create_price(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    model_id = check_id(call.params["id"])
    body = call.body_as(PriceCreate)
    async with deps.pool.acquire() as conn, conn.transaction():
        now: datetime = await conn.fetchval("SELECT now()")
        effective = body.effective_from or now
        price = PriceRecord(
            id=body.id or prices.new_price_id(model_id, effective), model_id=model_id,
            effective_from=effective,
            input_micros_per_mtok=body.input, output_micros_per_mtok=body.output,
            cached_input_micros_per_mtok=body.cached_input if body.cached_input is not None else body.input,
            cache_write_micros_per_mtok=body.cache_write if body.cache_write is not None else body.input,
            batch_discount_bps=body.batch_discount, source=call.caller.audit,
        )
        change = await prices.add_version(conn, price, actor(call), max_micros=deps.max_price_micros)
        versions = await store.prices_of(conn, model_id)
    if change.action is not None:
        log.info("catalog_price_added", model_id=model_id, price_id=price.id, version=change.version,
                 by=call.caller.audit, request_id=call.request_id)
        await deps.published()
    stored = next(v for v in versions if v.record.id == price.id)
    out = price_out(stored.record, stored.version, _current_id(versions, now), now)
    return Reply(201 if change.action else 200, out)
