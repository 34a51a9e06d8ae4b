"""Deployments (operator only): which backend serves a model — a Triton endpoint and model name, or a
provider's base URL and model id — with its weight, region/tier and fallback chain.

A deployment belongs to one model for its whole life (its id is the router's health and circuit key);
fallbacks must name live deployments. DELETE publishes the deployment as deleted and keeps the row for
the audit trail.
"""

from __future__ import annotations

import structlog

from services.catalog import store
from services.catalog.manage.context import Deps, actor, require_admin
from services.catalog.manage.models import check_id, not_found
from services.catalog.manage.views import DeploymentList, deployment_out
from services.catalog.manage.wire import DeploymentPut
from services.catalog.records import DeploymentRecord, ModelRecord
from services.common.errors import Conflict, InvalidRequest, NotFound
from services.common.manage.context import Call, Reply

log = structlog.get_logger(__name__)


async def list_deployments(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    model_id = check_id(call.params["id"])
    async with deps.pool.acquire() as conn:
        if await store.get(conn, ModelRecord, model_id) is None:
            raise not_found(model_id)
        rows = await conn.fetch(
            "SELECT * FROM deployments WHERE model_id = $1 AND NOT deleted ORDER BY id", model_id
        )
    return Reply(200, DeploymentList(data=[deployment_out(r) for r in rows], has_more=False))


async def put_deployment(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    model_id, dep_id = check_id(call.params["id"]), check_id(call.params["deployment_id"], "deployment_id")
    body = call.body_as(DeploymentPut)
    record = DeploymentRecord(id=dep_id, model_id=model_id, **body.model_dump())
    async with deps.pool.acquire() as conn, conn.transaction():
        if await store.get(conn, ModelRecord, model_id) is None:
            raise not_found(model_id)
        existing = await store.get(conn, DeploymentRecord, dep_id, lock=True)
        if existing is not None and existing.record.model_id != model_id:
            raise Conflict(f"Deployment {dep_id!r} belongs to model {existing.record.model_id!r}.",
                           param="deployment_id", code="deployment_of_another_model")
        for index, fallback in enumerate(record.fallback):
            target = await store.get(conn, DeploymentRecord, fallback)
            if fallback == dep_id or target is None or target.deleted:
                raise InvalidRequest(f"fallback {fallback!r} is not another live deployment.",
                                     param=f"fallback[{index}]", code="deployment_not_found")
        change = await store.put(conn, record, actor(call))
        row = await store.row_of(conn, "SELECT * FROM deployments WHERE id = $1", dep_id)
    if change.action is not None:
        log.info("catalog_deployment_saved", deployment_id=dep_id, model_id=model_id, action=change.action,
                 version=change.version, by=call.caller.audit, request_id=call.request_id)
        await deps.published()
    return Reply(201 if change.action == "create" else 200, deployment_out(row))


async def delete_deployment(deps: Deps, call: Call) -> Reply:
    require_admin(call)
    model_id, dep_id = check_id(call.params["id"]), check_id(call.params["deployment_id"], "deployment_id")
    async with deps.pool.acquire() as conn, conn.transaction():
        existing = await store.get(conn, DeploymentRecord, dep_id, lock=True)
        if existing is None or existing.deleted or existing.record.model_id != model_id:
            raise NotFound(f"No deployment {dep_id!r} of model {model_id!r}.", param="deployment_id")
        change = await store.delete(conn, DeploymentRecord, dep_id, actor(call))
        row = await store.row_of(conn, "SELECT * FROM deployments WHERE id = $1", dep_id)
    log.info("catalog_deployment_deleted", deployment_id=dep_id, version=change.version if change else None,
             by=call.caller.audit, request_id=call.request_id)
    await deps.published()
    return Reply(200, deployment_out(row))
