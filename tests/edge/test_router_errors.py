"""A router's CallError (and so an RPC's status and trailers) turned back into the client's error:
the class, hence the HTTP status and each API's error type, and the parameter at fault."""

from __future__ import annotations

import grpc
import pytest

from services.common.errors import PayloadTooLarge, TollgateError, UnsupportedByBackend, UpstreamError
from services.edge.router_errors import from_call_error
from tollgate.router.v1 import router_pb2


def _error(code: str, status: grpc.StatusCode, param: str = "") -> TollgateError:
    return from_call_error(router_pb2.CallError(code=code, grpc_status=status.value[0], message="m", param=param))


@pytest.mark.parametrize(
    ("code", "status", "cls", "http", "anthropic_type"),
    [
        ("request_too_large", grpc.StatusCode.INVALID_ARGUMENT, PayloadTooLarge, 413, "request_too_large"),
        ("unsupported_parameter", grpc.StatusCode.INVALID_ARGUMENT, UnsupportedByBackend, 400,
         "invalid_request_error"),
        ("upstream_error", grpc.StatusCode.UNAVAILABLE, UpstreamError, 502, "api_error"),
    ],
)
def test_each_code_comes_back_as_its_class(
    code: str, status: grpc.StatusCode, cls: type[TollgateError], http: int, anthropic_type: str
) -> None:
    exc = _error(code, status)
    assert type(exc) is cls and exc.http_status == http and exc.anthropic_type == anthropic_type


def test_the_parameter_at_fault_travels_with_known_and_unknown_codes() -> None:
    assert _error("unsupported_parameter", grpc.StatusCode.INVALID_ARGUMENT, "top_k").param == "top_k"
    assert _error("some_new_code", grpc.StatusCode.INVALID_ARGUMENT, "seed").param == "seed"
    assert _error("unsupported_parameter", grpc.StatusCode.INVALID_ARGUMENT).param is None
