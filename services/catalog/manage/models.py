"""Models: list, get, create-or-replace (PUT), change (PATCH: deprecation, enabling, details).

A model id and an alias id share one namespace (both are what a client sends as ``model``), so a
model cannot take a live alias's id. A replacement must be another model, not an alias and not the
model itself. Account-scoped callers read enabled models only, without their deployments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import structlog
from pydantic import TypeAdapter, ValidationError

from services.catalog import store
from services.catalog.manage.context import Deps, actor, require_admin
from services.catalog.manage.views import ModelList, ModelOut, deployment_out, model_out, price_out
from services.catalog.manage.wire import ModelPatch, ModelPut, ModelQuery, ResourceId
from services.catalog.records import ModelRecord, PriceRecord
from services.catalog.store import Conn
from services.common.errors import Conflict, InvalidRequest, NotFound
from services.common.events.base import Id
from services.common.manage.context import Call, Reply
from services.common.manage.validation import invalid

log = structlog.get_logger(__name__)
_ID = TypeAdapter(Id)
# a model id ending so would read as another route (``<id>/prices``); see routes' docstring
RESERVED_SUFFIXES = ("/prices", "/deployments")


def check_id(value: str, param: str = "id") -> str:
    """A path parameter is an id: the same pattern as in bodies, or a 400 naming it."""
    try:
        return _ID.validate_python(value)
    except ValidationError:
        raise InvalidRequest(
            f"{param} must be 1 to 128 letters, digits or _ . : - /", param=param, code="invalid_value"
        ) from None


def not_found(model_id: str) -> NotFound:
    return NotFound(f"No model {model_id!r} in the catalog.", param="model", code="model_not_found")


async def view(conn: Conn, row: asyncpg.Record, admin: bool) -> ModelOut:
    model_id = row["id"]
    now: datetime = await conn.fetchval("SELECT now()")
    aliases = [r["id"] for r in await conn.fetch(
        "SELECT id FROM aliases WHERE target = $1 AND NOT deleted ORDER BY id", model_id)]
    price_row = await conn.fetchrow(
        """SELECT * FROM prices WHERE model_id = $1 AND effective_from <= $2
           ORDER BY effective_from DESC, id DESC LIMIT 1""", model_id, now)
    price = None
    if price_row is not None:
        price = price_out(PriceRecord.from_row(price_row), price_row["state_version"], price_row["id"], now)
    deployments = None
    if admin:
        deployments = [deployment_out(r) for r in await conn.fetch(
            "SELECT * FROM deployments WHERE model_id = $1 AND NOT deleted ORDER BY id", model_id)]
    return model_out(row, aliases, price, deployments)


async def visible_model(conn: Conn, call: Call, model_id: str) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM models WHERE id = $1", model_id)
    if row is None or (not call.caller.admin and not row["enabled"]):
        raise not_found(model_id)
    return row


async def list_models(deps: Deps, call: Call) -> Reply:
    query = call.query_as(ModelQuery)
    if query.include_disabled:
        require_admin(call)
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT * FROM models
               WHERE ($1::text IS NULL OR id > $1) AND ($2 OR enabled)
                 AND ($3::text IS NULL OR category = $3) AND ($4::text IS NULL OR $4 = ANY(tags))
               ORDER BY id LIMIT $5""",
            query.after, query.include_disabled, query.category, query.tag, query.limit + 1,
        )
        data = [await view(conn, r, call.caller.admin) for r in rows[: query.limit]]
    return Reply(200, ModelList(data=data, has_more=len(rows) > query.limit))


async def get_model(deps: Deps, call: Call) -> Reply:
    model_id = check_id(call.params["id"])
    async with deps.pool.acquire() as conn:
        row = await visible_model(conn, call, model_id)
        return Reply(200, await view(conn, row, call.caller.admin))


async def _check_links(conn: Conn, record: ModelRecord) -> None:
    if record.id.endswith(RESERVED_SUFFIXES) or "/deployments/" in record.id:
        raise InvalidRequest("A model id cannot end in /prices or /deployments, nor contain /deployments/.",
                             param="id", code="invalid_value")
    if await store.id_taken(conn, record.id) == "alias":
        raise Conflict(f"{record.id!r} is an alias; a model cannot take its id (delete the alias first).",
                       param="id", code="id_taken")
    if record.replacement is not None:
        if record.replacement == record.id:
            raise InvalidRequest("A model cannot be its own replacement.", param="replacement")
        if await store.get(conn, ModelRecord, record.replacement) is None:
            raise InvalidRequest(f"replacement {record.replacement!r} is not a model in the catalog.",
                                 param="replacement", code="model_not_found")


async def _save(deps: Deps, call: Call, conn: Conn, record: ModelRecord) -> store.Change:
    """Inside the caller's transaction: check the links, write (version + audit)."""
    await _check_links(conn, record)
    return await store.put(conn, record, actor(call))


async def _answer(deps: Deps, call: Call, change: store.Change, model_id: str) -> None:
    if change.action is not None:
        log.info("catalog_model_saved", model_id=model_id, action=change.action, version=change.version,
                 by=call.caller.audit, request_id=call.request_id)
        await deps.published()


async def put_model(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    model_id: ResourceId = check_id(call.params["id"])
    record = ModelRecord(id=model_id, **call.body_as(ModelPut).model_dump())
    async with deps.pool.acquire() as conn, conn.transaction():
        change = await _save(deps, call, conn, record)
        out = await view(conn, await visible_model(conn, call, model_id), admin=True)
    await _answer(deps, call, change, model_id)
    return Reply(201 if change.action == "create" else 200, out)


async def patch_model(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    model_id = check_id(call.params["id"])
    body = call.body_as(ModelPatch)
    async with deps.pool.acquire() as conn, conn.transaction():
        current = await store.get(conn, ModelRecord, model_id, lock=True)
        if current is None:
            raise not_found(model_id)
        changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
        merged = {**current.record.model_dump(), **changes}
        try:  # the model as patched must still be a whole valid model
            ModelPut.model_validate({k: v for k, v in merged.items() if k != "id"})
            record = ModelRecord.model_validate(merged)
        except ValidationError as exc:
            raise invalid(exc) from None
        change = await _save(deps, call, conn, record)
        out = await view(conn, await visible_model(conn, call, model_id), admin=True)
    await _answer(deps, call, change, model_id)
    return Reply(200, out)
