"""Accounts: create (top-level or below a parent), list, get, rename, suspend/reactivate, billing mode.

Suspension is inherited: a suspended account's keys and those of every account below it are answered
403 by the edges. So a status change republishes every live key of the subtree (billing-mode changes
the same way, which covers the account's own keys). Money decisions stay with the operator: an
account-scoped caller cannot set a billing mode (a sub-account inherits its parent's) and cannot
suspend or reactivate its own account.
"""

from __future__ import annotations

import structlog

from services.billing.manage import store
from services.billing.manage.context import Deps
from services.billing.manage.pages import page
from services.billing.manage.tenancy import require_account, tree_of
from services.billing.manage.views import AccountList, account_view
from services.billing.manage.wire import AccountCreate, AccountPatch, AccountQuery
from services.common.errors import PermissionDenied
from services.common.manage.context import Call, Reply

log = structlog.get_logger(__name__)


async def create_account(deps: Deps, call: Call) -> Reply:
    body, caller = call.body_as(AccountCreate), call.caller
    if not caller.admin and "billing" in body.model_fields_set:
        raise PermissionDenied(
            "Only the platform operator can set a billing mode; a sub-account inherits its parent's.",
            param="billing", code="admin_only",
        )
    parent_id = body.parent_id if body.parent_id is not None else caller.account_id
    billing = body.billing
    async with deps.pool.acquire() as conn, conn.transaction():
        if parent_id is not None:
            parent = await require_account(
                conn, caller, await store.get_account(conn, parent_id), parent_id, "parent_id"
            )
            if not caller.admin:
                billing = parent["billing"]
        row = await store.insert_account(conn, body.name, parent_id, billing)
    log.info("account_created", account_id=row["id"], parent_id=parent_id, by=caller.audit,
             request_id=call.request_id)
    return Reply(201, account_view(row))


async def get_account(deps: Deps, call: Call) -> Reply:
    account_id = call.params["id"]
    async with deps.pool.acquire() as conn:
        row = await require_account(conn, call.caller, await store.get_account(conn, account_id), account_id)
    return Reply(200, account_view(row))


async def list_accounts(deps: Deps, call: Call) -> Reply:
    query = call.query_as(AccountQuery)
    async with deps.pool.acquire() as conn:
        scope = await tree_of(conn, call.caller)
        rows = await store.list_accounts(conn, scope, query.parent_id, query.after, query.limit)
    return Reply(200, page(rows, query.limit, account_view, AccountList))


async def patch_account(deps: Deps, call: Call) -> Reply:
    body, caller, account_id = call.body_as(AccountPatch), call.caller, call.params["id"]
    touched = 0
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await require_account(
            conn, caller, await store.get_account(conn, account_id, lock=True), account_id
        )
        changes = {f: getattr(body, f) for f in body.model_fields_set}
        if not caller.admin and "billing" in changes:
            raise PermissionDenied("Only the platform operator can change a billing mode.",
                                   param="billing", code="admin_only")
        if not caller.admin and "status" in changes and account_id == caller.account_id:
            raise PermissionDenied(
                "An account cannot suspend or reactivate itself; only its parent or the operator can.",
                param="status", code="own_account",
            )
        changes = {f: v for f, v in changes.items() if row[f] != v}
        if changes:
            row = await store.update_account(conn, account_id, changes)
            if "status" in changes or "billing" in changes:
                touched = await store.touch_keys_below(conn, account_id)
    if changes:
        log.info("account_changed", account_id=account_id, fields=sorted(changes), keys_republished=touched,
                 by=caller.audit, request_id=call.request_id)
    if touched:
        await deps.outbox.flush(deps.flush_timeout)
    return Reply(200, account_view(row))
