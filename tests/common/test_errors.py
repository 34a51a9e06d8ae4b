from __future__ import annotations

import grpc
import pytest

from services.common import errors


@pytest.mark.parametrize(
    ("cls", "status", "openai_type", "anthropic_type", "code"),
    [
        (errors.InvalidRequest, 400, "invalid_request_error", "invalid_request_error", grpc.StatusCode.INVALID_ARGUMENT),
        (errors.AuthenticationFailed, 401, "authentication_error", "authentication_error", grpc.StatusCode.UNAUTHENTICATED),
        (errors.RateLimited, 429, "rate_limit_error", "rate_limit_error", grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.InsufficientQuota, 429, "insufficient_quota", "rate_limit_error", grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.PayloadTooLarge, 413, "invalid_request_error", "request_too_large", grpc.StatusCode.INVALID_ARGUMENT),
        (errors.Overloaded, 503, "overloaded_error", "overloaded_error", grpc.StatusCode.UNAVAILABLE),
        (errors.UpstreamTimeout, 504, "timeout_error", "api_error", grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
def test_each_error_carries_http_openai_anthropic_and_grpc_identity(
    cls: type[errors.TollgateError], status: int, openai_type: str, anthropic_type: str, code: grpc.StatusCode
) -> None:
    err = cls("something is wrong", param="model")
    assert err.http_status == status
    assert err.grpc_code == code
    assert err.to_openai()["error"]["type"] == openai_type
    assert err.to_openai()["error"]["message"] == "something is wrong"
    assert err.to_openai()["error"]["param"] == "model"
    assert err.to_anthropic() == {
        "type": "error", "error": {"type": anthropic_type, "message": "something is wrong"},
    }


def test_default_codes_follow_openai() -> None:
    assert errors.RateLimited("slow down").to_openai()["error"]["code"] == "rate_limit_exceeded"
    assert errors.InsufficientQuota("pay").to_openai()["error"]["code"] == "insufficient_quota"
    assert errors.AuthenticationFailed("no").to_openai()["error"]["code"] == "invalid_api_key"
    assert errors.RateLimited("x", code="tokens_exceeded").code == "tokens_exceeded"


def test_grpc_status_maps_back_to_the_same_error_class() -> None:
    for cls in (errors.InvalidRequest, errors.AuthenticationFailed, errors.NotFound, errors.UpstreamTimeout):
        again = errors.from_grpc(cls.grpc_code, "m")
        assert type(again) is cls and again.message == "m"
    assert type(errors.from_grpc(grpc.StatusCode.INTERNAL, "boom")) is errors.TollgateError
