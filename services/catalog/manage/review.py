"""Sync on demand, the review queue, and the audit trail (operator only).

``POST /v1/manage/catalog/sync`` runs one *declared* source (``CATALOG_SYNC_SOURCES``): a client can
never make the catalog fetch a URL or read a file of its choosing. Held price changes wait in
``pending_changes``; approving one adds it as a new price version (now, or at a later
``effective_from``), rejecting one closes it. Both are audited.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import orjson
import structlog

from services.catalog import prices, store
from services.catalog.manage.context import Deps, actor, require_admin
from services.catalog.manage.models import check_id
from services.catalog.manage.views import (
    AuditList,
    PendingList,
    SyncRunList,
    SyncRunOut,
    audit_out,
    pending_out,
)
from services.catalog.manage.wire import Approve, AuditQuery, PendingQuery, Reject, SyncRun, SyncRunsQuery
from services.catalog.store import Conn
from services.catalog.sync.report import SyncReport
from services.catalog.sync.runner import amounts_of, price_record, run_sync
from services.common.errors import Conflict, InvalidRequest, NotFound
from services.common.manage.context import Call, Reply

log = structlog.get_logger(__name__)


async def sync(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    body = call.body_as(SyncRun)
    source = deps.sync_sources.get(body.source)
    if source is None:
        known = ", ".join(sorted(deps.sync_sources)) or "none are configured (CATALOG_SYNC_SOURCES)"
        raise InvalidRequest(f"Unknown sync source; known sources: {known}.", param="source",
                             code="unknown_source")
    report = await run_sync(deps.pool, source, deps.sync_config, "api", dry_run=body.dry_run,
                            api_key=deps.credential(source.credentials_env))
    if report.applied or (report.held and not body.dry_run):
        await deps.published()
    return Reply(200, report)


async def list_sync_runs(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    query = call.query_as(SyncRunsQuery)
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT id, finished_at, report FROM sync_runs WHERE ($1::text IS NULL OR source = $1)
               ORDER BY id DESC LIMIT $2""", query.source, query.limit + 1)
    data = [SyncRunOut(id=r["id"], finished_at=r["finished_at"], report=SyncReport.model_validate_json(
        r["report"])) for r in rows[: query.limit]]
    return Reply(200, SyncRunList(data=data, has_more=len(rows) > query.limit))


async def list_pending(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    query = call.query_as(PendingQuery)
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT * FROM pending_changes WHERE status = $1 AND ($2::text IS NULL OR id > $2)
               ORDER BY id LIMIT $3""", query.status, query.after, query.limit + 1)
    return Reply(200, PendingList(data=[pending_out(r) for r in rows[: query.limit]],
                                  has_more=len(rows) > query.limit))


async def _open(conn: Conn, change_id: str) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM pending_changes WHERE id = $1 FOR UPDATE", change_id)
    if row is None:
        raise NotFound(f"No pending change {change_id!r}.", param="id")
    if row["status"] != "pending":
        raise Conflict(f"Pending change {change_id!r} was already {row['status']}.", code="already_decided")
    return row


async def approve(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    change_id = check_id(call.params["id"])
    body = call.body_as(Approve)
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await _open(conn, change_id)
        now: datetime = await conn.fetchval("SELECT now()")
        price = price_record(row["model_id"], amounts_of(orjson.loads(row["proposed_price"])),
                             body.effective_from or now, f"review:{row['source']}")
        change = await prices.add_version(conn, price, actor(call), max_micros=deps.max_price_micros,
                                          note=f"approved {change_id}")
        row = await store.row_of(
            conn, """UPDATE pending_changes SET status = 'approved', decided_at = now(), decided_by = $2,
                      applied_price_id = $3, updated_at = now() WHERE id = $1 RETURNING *""",
            change_id, call.caller.audit, price.id)
        await store.audit(conn, actor(call), "approved", "pending_change", change_id, change.version,
                          None, {"price_id": price.id})
    log.info("catalog_change_approved", change_id=change_id, price_id=price.id, by=call.caller.audit,
             request_id=call.request_id)
    await deps.published()
    return Reply(200, pending_out(row))


async def reject(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    change_id = check_id(call.params["id"])
    body = call.body_as(Reject)
    async with deps.pool.acquire() as conn, conn.transaction():
        await _open(conn, change_id)
        row = await store.row_of(
            conn, """UPDATE pending_changes SET status = 'rejected', decided_at = now(), decided_by = $2,
                      updated_at = now() WHERE id = $1 RETURNING *""", change_id, call.caller.audit)
        await store.audit(conn, actor(call), "rejected", "pending_change", change_id, None, None, None,
                          body.reason)
    log.info("catalog_change_rejected", change_id=change_id, by=call.caller.audit, request_id=call.request_id)
    return Reply(200, pending_out(row))


async def list_audit(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    query = call.query_as(AuditQuery)
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT * FROM catalog_audit
               WHERE ($1::text IS NULL OR entity_kind = $1) AND ($2::text IS NULL OR entity_id = $2)
                 AND ($3::bigint IS NULL OR id < $3)
               ORDER BY id DESC LIMIT $4""", query.kind, query.entity_id, query.before, query.limit + 1)
    data = [audit_out(r) for r in rows[: query.limit]]
    return Reply(200, AuditList(data=data, has_more=len(rows) > query.limit))
