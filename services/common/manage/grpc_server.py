"""``tollgate.manage.v1.ManagementService`` over gRPC: the edge's forwarded request → a dispatcher.

The channel is internal: the service trusts the caller the edge established. A request with no caller
at all is refused (401) rather than treated as anyone in particular (a public route still answers it).
"""

from __future__ import annotations

from typing import Generic

import grpc
import structlog
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2_grpc

from services.common.errors import AuthenticationFailed, TollgateError
from services.common.manage.context import Caller
from services.common.manage.dispatch import Dispatcher
from services.common.manage.routing import DepsT
from tollgate.manage.v1 import manage_pb2, manage_pb2_grpc

Context = grpc.aio.ServicerContext[manage_pb2.ManageRequest, manage_pb2.ManageResponse]


def caller_of(request: manage_pb2.ManageRequest) -> Caller | TollgateError:
    who = request.caller.WhichOneof("who")
    if who == "admin" and request.caller.admin:
        return Caller(account_id=None, key_id=request.caller.key_id)
    if who == "account_id" and request.caller.account_id:
        return Caller(account_id=request.caller.account_id, key_id=request.caller.key_id)
    return AuthenticationFailed("The management API needs the admin key or a management key.")


class ManagementService(manage_pb2_grpc.ManagementServiceServicer, Generic[DepsT]):
    def __init__(self, deps: DepsT, dispatch: Dispatcher[DepsT]) -> None:
        self._deps = deps
        self._dispatch = dispatch

    async def Call(  # noqa: N802 - gRPC method name
        self, request: manage_pb2.ManageRequest, context: Context
    ) -> manage_pb2.ManageResponse:
        structlog.contextvars.bind_contextvars(request_id=request.request_id)
        answer = await self._dispatch.answer(
            self._deps, caller_of(request), request.method, request.path, request.query, request.body,
            request.request_id,
        )
        return manage_pb2.ManageResponse(
            status=answer.status, body=answer.body, filename=answer.filename,
            content_type="" if answer.media_type == "application/json" else answer.media_type,
        )


def build_server(service: ManagementService[DepsT], health: health_aio.HealthServicer) -> grpc.aio.Server:
    server = grpc.aio.server()
    manage_pb2_grpc.add_ManagementServiceServicer_to_server(service, server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    return server
