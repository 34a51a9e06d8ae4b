"""Aliases: a stable public id (``smollm2``, ``claude-sonnet-latest``, a dated snapshot id) that
resolves to one concrete model, re-pointable without clients changing anything.

One hop only: the target must be a model, never another alias (edges and routers follow one hop),
and an alias cannot take a model's id. DELETE publishes the alias as deleted.
"""

from __future__ import annotations

import structlog

from services.catalog import store
from services.catalog.manage.context import Deps, actor, require_admin
from services.catalog.manage.models import check_id
from services.catalog.manage.views import AliasList, alias_out
from services.catalog.manage.wire import AliasPut, Page
from services.catalog.records import AliasRecord, ModelRecord
from services.common.errors import Conflict, InvalidRequest, NotFound
from services.common.manage.context import Call, Reply

log = structlog.get_logger(__name__)


async def list_aliases(deps: Deps, call: Call) -> Reply:
    query = call.query_as(Page)
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT a.* FROM aliases a JOIN models m ON m.id = a.target
               WHERE NOT a.deleted AND ($1 OR m.enabled) AND ($2::text IS NULL OR a.id > $2)
               ORDER BY a.id LIMIT $3""",
            call.caller.admin, query.after, query.limit + 1,
        )
    data = [alias_out(r) for r in rows[: query.limit]]
    return Reply(200, AliasList(data=data, has_more=len(rows) > query.limit))


async def get_alias(deps: Deps, call: Call) -> Reply:
    alias_id = check_id(call.params["alias"], "alias")
    async with deps.pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT a.* FROM aliases a JOIN models m ON m.id = a.target
               WHERE a.id = $1 AND NOT a.deleted AND ($2 OR m.enabled)""", alias_id, call.caller.admin)
    if row is None:
        raise NotFound(f"No alias {alias_id!r} in the catalog.", param="alias")
    return Reply(200, alias_out(row))


async def put_alias(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    alias_id = check_id(call.params["alias"], "alias")
    target = call.body_as(AliasPut).target
    async with deps.pool.acquire() as conn, conn.transaction():
        if await store.get(conn, ModelRecord, alias_id) is not None:
            raise Conflict(f"{alias_id!r} is a model id; an alias cannot take it.", param="alias",
                           code="id_taken")
        if await store.get(conn, ModelRecord, target) is None:
            hint = " (an alias must point at a model, not at another alias)" if await store.id_taken(
                conn, target) == "alias" else ""
            raise InvalidRequest(f"target {target!r} is not a model in the catalog{hint}.", param="target",
                                 code="model_not_found")
        change = await store.put(conn, AliasRecord(id=alias_id, target=target), actor(call))
        row = await store.row_of(conn, "SELECT * FROM aliases WHERE id = $1", alias_id)
    if change.action is not None:
        log.info("catalog_alias_saved", alias=alias_id, target=target, action=change.action,
                 version=change.version, by=call.caller.audit, request_id=call.request_id)
        await deps.published()
    return Reply(201 if change.action == "create" else 200, alias_out(row))


async def delete_alias(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    alias_id = check_id(call.params["alias"], "alias")
    async with deps.pool.acquire() as conn, conn.transaction():
        change = await store.delete(conn, AliasRecord, alias_id, actor(call))
        if change is None:
            raise NotFound(f"No alias {alias_id!r} in the catalog.", param="alias")
        row = await store.row_of(conn, "SELECT * FROM aliases WHERE id = $1", alias_id)
    log.info("catalog_alias_deleted", alias=alias_id, version=change.version, by=call.caller.audit,
             request_id=call.request_id)
    await deps.published()
    return Reply(200, alias_out(row))
