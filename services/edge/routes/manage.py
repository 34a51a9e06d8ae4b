"""The management API's front door: ``/v1/manage/...`` and ``/openapi.json``.

The edge authenticates the caller — the operator's admin key (``TOLLGATE_ADMIN_KEY``), or an
account-scoped management key from its keys.v1 snapshot — and forwards the request unchanged to the
service that owns the resource, over its ``ManagementService.Call``: usage (``/v1/manage/usage``) to
metering, models and prices (``/v1/manage/models``, ``/v1/manage/catalog``) to catalog, everything else
(accounts, plans, keys, balances) to billing. Each owns its resources, their
validation, their tenancy rules and its part of the OpenAPI document; the edge merges the parts.
Answers come back as the owner wrote them (status + JSON body, errors in OpenAI's shape), with this
request's ``x-request-id``; an owner may answer another media type (a CSV statement), and a filename
makes it a download (``content-disposition: attachment``).
"""

from __future__ import annotations

import hmac
import re
from typing import Any

import grpc
import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from services.common.errors import AuthenticationFailed, DependencyUnavailable, TollgateError
from services.edge.auth import presented_key
from services.edge.dependencies import EdgeDeps
from services.edge.routes.responses import error_response, read_body
from tollgate.manage.v1 import manage_pb2, manage_pb2_grpc

log = structlog.get_logger(__name__)
OWNERS = (  # path prefix → the service that owns it; anything else belongs to billing
    ("/v1/manage/usage", "metering"), ("/v1/manage/models", "catalog"), ("/v1/manage/catalog", "catalog"),
)
ADMIN_REQUIRED = "A management key is required: the admin key, or an account's management key, as Bearer."


def _caller(request: Request, deps: EdgeDeps) -> manage_pb2.Caller:
    presented = presented_key(request.headers)
    admin = deps.settings.admin_key
    if presented and admin is not None and hmac.compare_digest(
        presented.encode(), admin.get_secret_value().encode()
    ):
        return manage_pb2.Caller(admin=True)
    if not presented:
        raise AuthenticationFailed(ADMIN_REQUIRED)
    key = deps.key_index.authenticate(presented, kind="management")
    return manage_pb2.Caller(account_id=key.account_id, key_id=key.key_id)


def _owner(deps: EdgeDeps, path: str) -> grpc.aio.Channel:
    for prefix, service in OWNERS:
        if path == prefix or path.startswith(prefix + "/"):
            return deps.metering_channel if service == "metering" else deps.catalog_channel
    return deps.billing_channel


async def forward(request: Request) -> Response:
    deps: EdgeDeps = request.app.state.deps
    request_id: str = request.scope["state"]["request_id"]
    try:
        caller = _caller(request, deps)
        body = await read_body(request, deps.settings.max_body_bytes)
        path = request.url.path
        stub = manage_pb2_grpc.ManagementServiceStub(_owner(deps, path))
        reply = await stub.Call(
            manage_pb2.ManageRequest(
                request_id=request_id, caller=caller, method=request.method, path=path,
                query=request.url.query, body=body,
            ),
            timeout=deps.settings.manage_timeout_seconds,
        )
    except TollgateError as exc:
        return error_response(exc, "openai")
    except grpc.aio.AioRpcError as err:
        unavailable = DependencyUnavailable(
            "The management backend is unavailable; try again shortly.", retry_after=1.0
        )
        if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            unavailable.message = "The management backend failed to answer."
        return error_response(unavailable, "openai")
    headers = None
    if reply.filename:
        headers = {"content-disposition": f'attachment; filename="{_safe(reply.filename)}"'}
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type or "application/json",
                    headers=headers)


def _safe(filename: str) -> str:
    """The owner's download name, reduced to characters that need no quoting in a header."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:200] or "download"


async def _document(channel: grpc.aio.Channel, request_id: str, timeout: float) -> dict[str, Any] | None:
    try:
        reply = await manage_pb2_grpc.ManagementServiceStub(channel).Call(
            manage_pb2.ManageRequest(request_id=request_id, caller=manage_pb2.Caller(), method="GET",
                                     path="/openapi.json"),
            timeout=timeout,
        )
    except grpc.aio.AioRpcError as err:
        log.warning("openapi_part_unavailable", code=err.code().name)
        return None
    document = orjson.loads(reply.body) if reply.status == 200 else None
    return document if isinstance(document, dict) else None


def merge_documents(base: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """``part``'s paths and component schemas added to ``base`` (base wins a name both define)."""
    merged = {**base, "paths": {**part.get("paths", {}), **base.get("paths", {})}}
    components = dict(base.get("components", {}))
    for section, entries in part.get("components", {}).items():
        components[section] = {**entries, **components.get(section, {})}
    merged["components"] = components
    return merged


async def openapi(request: Request) -> Response:
    """The management API's OpenAPI document, merged from its owners; public (it describes, it does
    not act). Without billing there is no document (503); a part whose owner does not answer (metering,
    catalog) is left out until it answers again."""
    deps: EdgeDeps = request.app.state.deps
    request_id = request.scope["state"]["request_id"]
    timeout = deps.settings.manage_timeout_seconds
    billing = await _document(deps.billing_channel, request_id, timeout)
    if billing is None:
        return error_response(DependencyUnavailable("The management backend is unavailable."), "openai")
    document = billing
    for channel in (deps.metering_channel, deps.catalog_channel):
        part = await _document(channel, request_id, timeout)
        if part is not None:
            document = merge_documents(document, part)
    return Response(orjson.dumps(document), media_type="application/json")
