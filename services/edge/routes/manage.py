"""The management API's front door: ``/v1/manage/...`` and ``/openapi.json``.

The edge authenticates the caller — the operator's admin key (``TOLLGATE_ADMIN_KEY``), or an
account-scoped management key from its keys.v1 snapshot — and forwards the request unchanged to
billing's ``ManagementService.Call``, which owns the resources, their validation, the tenancy rules
and the OpenAPI document. Answers come back as billing wrote them (status + JSON body, errors in
OpenAI's shape), with this request's ``x-request-id``.
"""

from __future__ import annotations

import hmac

import grpc
from starlette.requests import Request
from starlette.responses import Response

from services.common.errors import AuthenticationFailed, DependencyUnavailable, TollgateError
from services.edge.auth import presented_key
from services.edge.dependencies import EdgeDeps
from services.edge.routes.responses import error_response, read_body
from tollgate.manage.v1 import manage_pb2, manage_pb2_grpc

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


async def forward(request: Request) -> Response:
    deps: EdgeDeps = request.app.state.deps
    request_id: str = request.scope["state"]["request_id"]
    try:
        caller = _caller(request, deps)
        body = await read_body(request, deps.settings.max_body_bytes)
        stub = manage_pb2_grpc.ManagementServiceStub(deps.billing_channel)
        reply = await stub.Call(
            manage_pb2.ManageRequest(
                request_id=request_id, caller=caller, method=request.method, path=request.url.path,
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
    return Response(reply.body, status_code=reply.status, media_type="application/json")


async def openapi(request: Request) -> Response:
    """The management API's OpenAPI document; public (it describes, it does not act)."""
    deps: EdgeDeps = request.app.state.deps
    try:
        stub = manage_pb2_grpc.ManagementServiceStub(deps.billing_channel)
        reply = await stub.Call(
            manage_pb2.ManageRequest(
                request_id=request.scope["state"]["request_id"], caller=manage_pb2.Caller(),
                method="GET", path="/openapi.json",
            ),
            timeout=deps.settings.manage_timeout_seconds,
        )
    except grpc.aio.AioRpcError:
        return error_response(DependencyUnavailable("The management backend is unavailable."), "openai")
    return Response(reply.body, status_code=reply.status, media_type="application/json")
