"""The one error hierarchy: each error knows its HTTP status, its OpenAI and Anthropic error types and
its gRPC code, so an error raised anywhere is rendered correctly by whichever front door it reaches.

::

    TollgateError                      500 api_error            INTERNAL
    ├── InvalidRequest                 400 invalid_request_error INVALID_ARGUMENT
    │   ├── PayloadTooLarge            413 invalid_request_error INVALID_ARGUMENT
    │   ├── UnsupportedByBackend       400 invalid_request_error INVALID_ARGUMENT (unsupported_parameter)
    │   ├── UnknownURL                 404 invalid_request_error NOT_FOUND (unknown_url)
    │   ├── MethodNotAllowed           405 invalid_request_error INVALID_ARGUMENT (method_not_allowed)
    │   └── ContextTooLong             400 invalid_request_error INVALID_ARGUMENT (context_length_exceeded)
    ├── AuthenticationFailed           401 authentication_error  UNAUTHENTICATED
    ├── PermissionDenied               403 permission_error      PERMISSION_DENIED
    ├── NotFound                       404 not_found_error       NOT_FOUND
    ├── Conflict                       409 conflict_error        ALREADY_EXISTS
    ├── Gone                           410 invalid_request_error FAILED_PRECONDITION (model_sunset)
    ├── RateLimited                    429 rate_limit_error      RESOURCE_EXHAUSTED (rate_limit_exceeded)
    ├── InsufficientQuota              429 insufficient_quota    RESOURCE_EXHAUSTED
    ├── UpstreamError                  502 api_error             UNAVAILABLE
    ├── Overloaded                     503 overloaded_error      UNAVAILABLE
    ├── DependencyUnavailable          503 api_error             UNAVAILABLE
    └── UpstreamTimeout                504 timeout_error         DEADLINE_EXCEEDED
"""

from __future__ import annotations

from typing import Any, ClassVar

import grpc


class TollgateError(Exception):
    http_status: ClassVar[int] = 500
    openai_type: ClassVar[str] = "api_error"
    anthropic_type: ClassVar[str] = "api_error"
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.retry_after = retry_after
        self.headers: dict[str, str] = {}  # extra response headers (e.g. x-ratelimit-* on a refusal)
        # False: retrying will not help soon (the SDKs read it as x-should-retry); None: the status says
        self.should_retry: bool | None = None

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.openai_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_anthropic(self) -> dict[str, Any]:
        """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}}``."""
        return {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}


class InvalidRequest(TollgateError):
    http_status = 400
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class PayloadTooLarge(InvalidRequest):
    http_status = 413
    anthropic_type = "request_too_large"
    default_code = "request_too_large"


class UnsupportedByBackend(InvalidRequest):
    """A parameter (or kind of request) one deployment's backend does not take, refused before
    anything was sent. Not the client's fault while another deployment of the model takes it: the
    router tries the next deployment, and answers with this only when none does."""

    default_code = "unsupported_parameter"


class UnknownURL(InvalidRequest):
    """No such endpoint: OpenAI answers a request to an unknown URL with this type and code."""

    http_status = 404
    anthropic_type = "not_found_error"
    grpc_code = grpc.StatusCode.NOT_FOUND
    default_code = "unknown_url"


class MethodNotAllowed(InvalidRequest):
    http_status = 405
    default_code = "method_not_allowed"


class ContextTooLong(InvalidRequest):
    default_code = "context_length_exceeded"


class AuthenticationFailed(TollgateError):
    http_status = 401
    openai_type = "authentication_error"
    anthropic_type = "authentication_error"
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    default_code = "invalid_api_key"


class PermissionDenied(TollgateError):
    http_status = 403
    openai_type = "permission_error"
    anthropic_type = "permission_error"
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(TollgateError):
    http_status = 404
    openai_type = "not_found_error"
    anthropic_type = "not_found_error"
    grpc_code = grpc.StatusCode.NOT_FOUND


class Conflict(TollgateError):
    http_status = 409
    openai_type = "conflict_error"
    anthropic_type = "invalid_request_error"
    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class Gone(TollgateError):
    http_status = 410
    openai_type = "invalid_request_error"
    anthropic_type = "not_found_error"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    default_code = "model_sunset"


class RateLimited(TollgateError):
    http_status = 429
    openai_type = "rate_limit_error"
    anthropic_type = "rate_limit_error"
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_code = "rate_limit_exceeded"


class InsufficientQuota(TollgateError):
    http_status = 429
    openai_type = "insufficient_quota"
    anthropic_type = "rate_limit_error"
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_code = "insufficient_quota"


class UpstreamError(TollgateError):
    http_status = 502
    grpc_code = grpc.StatusCode.UNAVAILABLE
    default_code = "upstream_error"


class Overloaded(TollgateError):
    http_status = 503
    openai_type = "overloaded_error"
    anthropic_type = "overloaded_error"
    grpc_code = grpc.StatusCode.UNAVAILABLE
    default_code = "overloaded"


class RouterBusy(Overloaded):
    """The router itself is out of capacity for the request (every provider connection it may open is
    in use): an overload with no verdict on the backend, so no breaker counts it against one."""


class DependencyUnavailable(TollgateError):
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    default_code = "service_unavailable"


class UpstreamTimeout(TollgateError):
    http_status = 504
    openai_type = "timeout_error"
    anthropic_type = "api_error"
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_code = "timeout"


# gRPC status → error class, for turning a failed internal call back into the same error.
_BY_GRPC: dict[grpc.StatusCode, type[TollgateError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationFailed,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: Gone,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: UpstreamError,
    grpc.StatusCode.DEADLINE_EXCEEDED: UpstreamTimeout,
}


def from_grpc(code: grpc.StatusCode, message: str) -> TollgateError:
    """The error a failed gRPC call stands for (INTERNAL and unknown codes → TollgateError)."""
    return _BY_GRPC.get(code, TollgateError)(message)
