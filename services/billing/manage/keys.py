"""API keys: issue (the secret is answered once and never stored), list, get, change, revoke, rotate.

Billing keeps only the keyed hash and a display prefix; the secret exists in the create/rotate answer
and nowhere else (not in a table, a log or an event). Revocation is final: a revoked key cannot be
changed or rotated (409). Rotation issues a new key that copies the old one (account, plan, name,
kind, expiry, status, overrides; ``rotated_from`` = the old id) and revokes the old one, in one
transaction, so there is never a moment with both or neither working.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from services.billing.db import Conn
from services.billing.key_events import overrides_of
from services.billing.manage import store
from services.billing.manage.context import Deps
from services.billing.manage.limits import require_tightening
from services.billing.manage.pages import page
from services.billing.manage.plans import require_future
from services.billing.manage.tenancy import (
    not_found,
    plan_fits_account,
    require_account,
    sees_account,
    sees_plan,
    tree_of,
)
from services.billing.manage.views import KeyList, key_view, with_secret
from services.billing.manage.wire import KeyCreate, KeyPatch, KeyQuery
from services.common.api_keys import display_prefix, generate_key, hash_key
from services.common.errors import Conflict, InvalidRequest
from services.common.manage.context import Call, Caller, Reply

log = structlog.get_logger(__name__)


async def _usable_plan(
    conn: Conn, caller: Caller, plan_id: str, account_id: str
) -> asyncpg.Record:
    """The plan a key of ``account_id`` may be put on: visible to the caller, fitting the account."""
    plan = await store.get_plan(conn, plan_id)
    if plan is None or not await sees_plan(conn, caller, plan["account_id"]):
        raise not_found("plan", plan_id, "plan_id")
    if not await plan_fits_account(conn, plan["account_id"], account_id):
        raise InvalidRequest(f"Plan '{plan_id}' belongs to another account's tree.", param="plan_id",
                             code="plan_not_applicable")
    if plan["expires_at"] is not None and plan["expires_at"] <= datetime.now(UTC):
        raise InvalidRequest(f"Plan '{plan_id}' has expired.", param="plan_id", code="plan_expired")
    return plan


async def _visible_key(
    conn: Conn, caller: Caller, key_id: str, lock: bool = False
) -> asyncpg.Record:
    row = await store.get_key(conn, key_id, lock=lock)
    if row is None or not await sees_account(conn, caller, row["account_id"]):
        raise not_found("key", key_id)
    return row


def _live(row: asyncpg.Record) -> None:
    if row["status"] == "revoked":
        raise Conflict("This key has been revoked; a revoked key cannot be changed or rotated.",
                       code="key_revoked")


def _new_secret(deps: Deps) -> tuple[str, bytes, str]:
    secret = generate_key()
    return secret, bytes.fromhex(hash_key(secret, deps.key_hash_secret)), display_prefix(secret)


async def create_key(deps: Deps, call: Call) -> Reply:
    body, caller = call.body_as(KeyCreate), call.caller
    require_future(body.expires_at, "expires_at")
    overrides = body.limits.internal() if body.limits is not None else {}
    async with deps.pool.acquire() as conn, conn.transaction():
        await require_account(conn, caller, await store.get_account(conn, body.account_id), body.account_id,
                              "account_id")
        plan = await _usable_plan(conn, caller, body.plan_id, body.account_id)
        if not caller.admin:
            require_tightening(plan, overrides)
        secret, digest, prefix = _new_secret(deps)
        key_id = await store.insert_key(
            conn, account_id=body.account_id, plan_id=body.plan_id, name=body.name, key_hash=digest,
            prefix=prefix, kind=body.kind, status="active", overrides=overrides, expires_at=body.expires_at,
        )
        row = await store.get_key(conn, key_id)
    assert row is not None
    log.info("key_created", key_id=key_id, account_id=body.account_id, kind=body.kind, by=caller.audit,
             request_id=call.request_id)
    await deps.outbox.flush(deps.flush_timeout)
    return Reply(201, with_secret(key_view(row), secret))


async def get_key(deps: Deps, call: Call) -> Reply:
    async with deps.pool.acquire() as conn:
        row = await _visible_key(conn, call.caller, call.params["id"])
    return Reply(200, key_view(row))


async def list_keys(deps: Deps, call: Call) -> Reply:
    query = call.query_as(KeyQuery)
    async with deps.pool.acquire() as conn:
        if query.account_id is not None:
            await require_account(conn, call.caller, await store.get_account(conn, query.account_id),
                                  query.account_id, "account_id")
        scope = await tree_of(conn, call.caller)
        rows = await store.list_keys(conn, scope, query.account_id, query.status, query.kind, query.after,
                                     query.limit)
    return Reply(200, page(rows, query.limit, key_view, KeyList))


async def patch_key(deps: Deps, call: Call) -> Reply:
    body, caller, key_id = call.body_as(KeyPatch), call.caller, call.params["id"]
    sent = body.model_fields_set
    require_future(body.expires_at, "expires_at")
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await _visible_key(conn, caller, key_id, lock=True)
        _live(row)
        changes: dict[str, Any] = {f: getattr(body, f) for f in sent & {"name", "status", "expires_at"}}
        plan: asyncpg.Record | dict[str, Any] = row  # the key row carries its plan's limit columns
        if "plan_id" in sent and body.plan_id != row["plan_id"]:
            assert body.plan_id is not None
            plan = await _usable_plan(conn, caller, body.plan_id, row["account_id"])
            changes["plan_id"] = body.plan_id
        if "limits" in sent:
            changes["overrides"] = body.limits.internal() if body.limits is not None else {}
        if changes.get("overrides", {}) == overrides_of(row["overrides"]) and "limits" in sent:
            del changes["overrides"]
        changes = {f: v for f, v in changes.items() if f == "overrides" or row[f] != v}
        if not caller.admin and ("plan_id" in changes or "overrides" in changes):
            require_tightening(plan, changes.get("overrides", overrides_of(row["overrides"])))
        if changes:
            await store.update_key(conn, key_id, changes)
            row = await _visible_key(conn, caller, key_id)
    if changes:
        log.info("key_changed", key_id=key_id, fields=sorted(changes), by=caller.audit,
                 request_id=call.request_id)
        await deps.outbox.flush(deps.flush_timeout)
    return Reply(200, key_view(row))


async def revoke_key(deps: Deps, call: Call) -> Reply:
    """DELETE: revoke (idempotent; the row stays, for audit and for usage that names it)."""
    caller, key_id = call.caller, call.params["id"]
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await _visible_key(conn, caller, key_id, lock=True)
        revoked_now = row["status"] != "revoked"
        if revoked_now:
            await store.update_key(conn, key_id, {"status": "revoked"})
            row = await _visible_key(conn, caller, key_id)
    if revoked_now:
        log.info("key_revoked", key_id=key_id, by=caller.audit, request_id=call.request_id)
        await deps.outbox.flush(deps.flush_timeout)
    return Reply(200, key_view(row))


async def rotate_key(deps: Deps, call: Call) -> Reply:
    caller, old_id = call.caller, call.params["id"]
    async with deps.pool.acquire() as conn, conn.transaction():
        old = await _visible_key(conn, caller, old_id, lock=True)
        _live(old)
        secret, digest, prefix = _new_secret(deps)
        new_id = await store.insert_key(
            conn, account_id=old["account_id"], plan_id=old["plan_id"], name=old["name"], key_hash=digest,
            prefix=prefix, kind=old["kind"], status=old["status"], overrides=overrides_of(old["overrides"]),
            expires_at=old["expires_at"], rotated_from=old_id,
        )
        await store.update_key(conn, old_id, {"status": "revoked"})
        row = await store.get_key(conn, new_id)
    assert row is not None
    log.info("key_rotated", key_id=new_id, rotated_from=old_id, by=caller.audit, request_id=call.request_id)
    await deps.outbox.flush(deps.flush_timeout)
    return Reply(201, with_secret(key_view(row), secret))
