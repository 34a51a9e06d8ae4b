"""A failed router call turned back into the error class it stands for, so the client gets the right
HTTP status and error type: from a one-call RPC's status and trailers (the router puts the error's
code in ``tollgate-error-code``, the parameter at fault in ``tollgate-error-param`` and a provider's
Retry-After in ``tollgate-retry-after``), or from a Session's ``CallError`` frame, which carries the
same things."""

from __future__ import annotations

from typing import Any

import grpc

from services.common.errors import DependencyUnavailable, TollgateError, from_grpc
from services.edge.finish import error_for_code
from tollgate.router.v1 import router_pb2

_STATUS_BY_VALUE = {status.value[0]: status for status in grpc.StatusCode}
UNAVAILABLE_MESSAGE = "The model router is unavailable; try again shortly."


def from_rpc_error(err: grpc.aio.AioRpcError) -> TollgateError:
    metadata: Any = err.trailing_metadata()  # grpc.aio.Metadata at run time (the stubs say tuples)
    code = metadata.get("tollgate-error-code") if metadata is not None else None
    param = metadata.get("tollgate-error-param") if metadata is not None else None
    exc = _classify(err.code(), err.details() or "", code if isinstance(code, str) else None,
                    param if isinstance(param, str) and param else None)
    wait = metadata.get("tollgate-retry-after") if metadata is not None else None
    if isinstance(wait, str):
        try:
            exc.retry_after = max(0.0, float(wait))
        except ValueError:
            pass
    return exc


def from_call_error(error: router_pb2.CallError) -> TollgateError:
    status = _STATUS_BY_VALUE.get(error.grpc_status, grpc.StatusCode.UNKNOWN)
    exc = _classify(status, error.message, error.code, error.param or None)
    if error.HasField("retry_after_seconds"):
        exc.retry_after = max(0.0, error.retry_after_seconds)
    return exc


def _classify(status: grpc.StatusCode, message: str, code: str | None, param: str | None) -> TollgateError:
    if code:
        known = error_for_code(code, message, param)
        if known is not None:
            return known
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED) and code is None:
        # no code from the router: the call never reached it, or was dropped (seen under overload)
        return DependencyUnavailable(UNAVAILABLE_MESSAGE)
    exc = from_grpc(status, message or "backend error")
    if code:
        exc.code = code
    exc.param = param
    return exc
