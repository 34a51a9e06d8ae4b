"""Plans: the limits a key gets (rates, concurrency, a budget per window, allowed models).

Only the operator creates and changes plans; an account-scoped caller may read the global plans and
those owned inside its tree. A change republishes every live key on the plan, in the same transaction
as the change (the outbox), so edges enforce the new limits within the 2 s of promise 5.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from services.billing.manage import store
from services.billing.manage.context import Deps
from services.billing.manage.pages import page
from services.billing.manage.tenancy import admin_only, not_found, require_account, sees_plan, tree_of
from services.billing.manage.views import PlanList, plan_view
from services.billing.manage.wire import PlanCreate, PlanPatch, PlanQuery
from services.common.errors import InvalidRequest
from services.common.manage.context import Call, Reply

log = structlog.get_logger(__name__)


def require_future(value: datetime | None, param: str) -> None:
    if value is not None and value <= datetime.now(UTC):
        raise InvalidRequest(f"{param} must be in the future.", param=param, code="invalid_value")


async def create_plan(deps: Deps, call: Call) -> Reply:
    admin_only(call.caller, "create plans")
    body = call.body_as(PlanCreate)
    require_future(body.expires_at, "expires_at")
    async with deps.pool.acquire() as conn, conn.transaction():
        if body.account_id is not None:
            owner = await store.get_account(conn, body.account_id)
            await require_account(conn, call.caller, owner, body.account_id, "account_id")
        row = await store.insert_plan(conn, body.internal())
    log.info("plan_created", plan_id=row["id"], owner=row["account_id"], by=call.caller.audit,
             request_id=call.request_id)
    return Reply(201, plan_view(row))


async def get_plan(deps: Deps, call: Call) -> Reply:
    plan_id = call.params["id"]
    async with deps.pool.acquire() as conn:
        row = await store.get_plan(conn, plan_id)
        if row is None or not await sees_plan(conn, call.caller, row["account_id"]):
            raise not_found("plan", plan_id)
    return Reply(200, plan_view(row))


async def list_plans(deps: Deps, call: Call) -> Reply:
    query = call.query_as(PlanQuery)
    async with deps.pool.acquire() as conn:
        scope = await tree_of(conn, call.caller)
        rows = await store.list_plans(conn, scope, query.after, query.limit)
    return Reply(200, page(rows, query.limit, plan_view, PlanList))


async def patch_plan(deps: Deps, call: Call) -> Reply:
    admin_only(call.caller, "change plans")
    body, plan_id = call.body_as(PlanPatch), call.params["id"]
    require_future(body.expires_at, "expires_at")
    touched = 0
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await store.get_plan(conn, plan_id, lock=True)
        if row is None:
            raise not_found("plan", plan_id)
        changes = {f: v for f, v in body.internal().items() if row[f] != v}
        merged = {**dict(row), **changes}
        if (merged["budget_micros"] is None) != (merged["budget_window_seconds"] is None):
            raise InvalidRequest(
                "budget_amount and budget_window go together: set both, or clear both.",
                param="budget_window" if merged["budget_window_seconds"] is None else "budget_amount",
                code="invalid_value",
            )
        if changes:
            row = await store.update_plan(conn, plan_id, changes)
            touched = await store.touch_keys_of_plan(conn, plan_id)
    if changes:
        log.info("plan_changed", plan_id=plan_id, fields=sorted(changes), keys_republished=touched,
                 by=call.caller.audit, request_id=call.request_id)
    if touched:
        await deps.outbox.flush(deps.flush_timeout)
    return Reply(200, plan_view(row))
