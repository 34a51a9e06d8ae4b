"""The provider error mapping, case by case (the backends' tests prove it on the wire)."""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path

import pytest

from services.common.errors import (
    ContextTooLong,
    InvalidRequest,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    TollgateError,
    UpstreamError,
    UpstreamTimeout,
)
from services.router.backends.http_client import (
    BadResponse,
    ConnectFailed,
    ConnectionBroken,
    ConnectionDropped,
)
from services.router.backends.provider_errors import (
    UpstreamRateLimited,
    error_from_response,
    error_from_stream_event,
    error_from_transport,
    is_retryable,
    is_transient,
    redact,
    retry_after,
)

FIXTURES = Path(__file__).parents[1] / "upstream" / "fixtures"


def openai_body(message: str, etype: str = "invalid_request_error", code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": etype, "param": None, "code": code}}).encode()


def anthropic_body(etype: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": etype, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (400, openai_body("Invalid 'temperature'"), InvalidRequest, None),
        (400, openai_body("too long", code="context_length_exceeded"), ContextTooLong, "context_length_exceeded"),
        (400, anthropic_body("invalid_request_error", "prompt is too long: 215847 tokens > 200000 maximum"),
         ContextTooLong, "context_length_exceeded"),
        # vLLM's shape, no code, only the words
        (400, json.dumps({"object": "error", "message": "This model's maximum context length is 2048 tokens.",
                          "type": "BadRequestError", "code": 400}).encode(), ContextTooLong, "context_length_exceeded"),
        (422, json.dumps({"detail": "field required"}).encode(), InvalidRequest, None),
        (401, openai_body("Incorrect API key provided: sk-proj-****cD3f", code="invalid_api_key"),
         UpstreamError, "upstream_auth"),
        (403, anthropic_body("permission_error", "no access"), UpstreamError, "upstream_auth"),
        (402, b"{}", UpstreamError, "upstream_quota_exhausted"),
        (429, openai_body("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
         UpstreamError, "upstream_quota_exhausted"),
        (404, openai_body("The model `x` does not exist", code="model_not_found"), UpstreamError,
         "upstream_model_not_found"),
        (408, b"", UpstreamTimeout, "timeout"),
        (413, anthropic_body("request_too_large", "Request exceeds the maximum allowed number of bytes."),
         PayloadTooLarge, "request_too_large"),
        (429, openai_body("Rate limit reached", "requests", "rate_limit_exceeded"), UpstreamRateLimited,
         "upstream_rate_limited"),
        (500, b"<html>Internal Server Error</html>", UpstreamError, "upstream_error"),
        (502, b"", UpstreamError, "upstream_error"),
        (503, openai_body("The engine is currently overloaded", "server_error"), UpstreamError, "upstream_error"),
        (504, b"", UpstreamTimeout, "timeout"),
        (529, anthropic_body("overloaded_error", "Overloaded"), Overloaded, "overloaded"),
        (500, anthropic_body("overloaded_error", "Overloaded"), Overloaded, "overloaded"),
    ],
)
def test_status_and_body_map_to_our_classes(status: int, body: bytes, cls: type[TollgateError], code: str | None) -> None:
    exc = error_from_response(status, {}, body)
    assert type(exc) is cls
    assert exc.code == code
    assert exc.http_status != 401


def test_upstream_rate_limit_is_an_upstream_error_that_renders_429() -> None:
    exc = error_from_response(429, {"Retry-After": "7"}, openai_body("slow down", "requests", "rate_limit_exceeded"))
    assert isinstance(exc, UpstreamError) and not isinstance(exc, RateLimited)
    assert exc.http_status == 429 and exc.retry_after == 7.0
    assert exc.to_openai()["error"]["type"] == "rate_limit_error"
    assert exc.to_anthropic()["error"]["type"] == "rate_limit_error"


def test_client_facing_text_keeps_request_errors_and_hides_credentials() -> None:
    exc = error_from_response(400, {}, openai_body("Invalid value for 'messages': key sk-abc123def456 is odd"),
                              secrets=["hunter2-secret"])
    assert "Invalid value for 'messages'" in exc.message
    assert "sk-abc123def456" not in exc.message
    auth = error_from_response(401, {}, openai_body("Incorrect API key provided: sk-proj-****cD3f"))
    assert "sk-" not in auth.message
    assert all("sk-proj" not in note for note in auth.__notes__)  # the operator's note is scrubbed too
    limited = error_from_response(429, {}, openai_body("Rate limit reached in organization org-Xq3ZbT9vLm2K"))
    assert "org-" not in limited.message and "org-Xq3" not in " ".join(limited.__notes__)


def test_recorded_error_fixtures_leak_nothing() -> None:
    for path in sorted(FIXTURES.glob("*/*.json")):
        recorded = json.loads(path.read_text())
        if "status" not in recorded:
            continue  # the streams' header sets
        exc = error_from_response(recorded["status"], recorded["headers"], json.dumps(recorded["body"]).encode())
        for leak in ("sk-", "org-", "proj_", "4c1f8a3e", "openai.com", "claude.com", "req_"):
            assert leak not in exc.message, (path.name, exc.message)


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("key sk-ant-api03-AbC_d-9", (), "key [redacted]"),
        ("Authorization: Bearer abc.def-ghi", (), "Authorization: Bearer [redacted]"),
        ("x-api-key: hunter2", (), "x-api-key: [redacted]"),
        ("the literal s3cr3t-value appears", ("s3cr3t-value",), "the literal [redacted] appears"),
        ("organization (4c1f8a3e-9b2d-4e7f-a6c5-3d8e1f0b2a94) of", (), "organization [redacted] of"),
        ("nothing secret here", (), "nothing secret here"),
    ],
)
def test_redact(text: str, secrets: tuple[str, ...], expected: str) -> None:
    assert redact(text, secrets) == expected


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"Retry-After": "3"}) == 3.0
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after({"retry-after": date}) or 0) <= 31


def test_stream_events_keep_overload_and_throttling() -> None:
    assert type(error_from_stream_event({"type": "error", "error": {"type": "overloaded_error",
                                                                     "message": "Overloaded"}})) is Overloaded
    assert type(error_from_stream_event({"error": {"type": "rate_limit_error"}})) is UpstreamRateLimited
    failed = error_from_stream_event({"error": {"message": "boom sk-abcdefgh", "type": "server_error"}})
    assert type(failed) is UpstreamError and "sk-" not in " ".join(failed.__notes__)


def test_transport_failures() -> None:
    assert type(error_from_transport(TimeoutError())) is UpstreamTimeout
    assert error_from_transport(ConnectFailed("x")).code == "upstream_unreachable"
    assert error_from_transport(ConnectionDropped("x")).code == "upstream_connection_lost"
    assert error_from_transport(ConnectionBroken("x")).code == "upstream_connection_lost"
    assert error_from_transport(BadResponse("x")).code == "upstream_bad_response"


@pytest.mark.parametrize(
    ("exc", "retryable", "transient"),
    [
        (UpstreamRateLimited("x"), True, True),
        (Overloaded("x"), True, True),
        (UpstreamTimeout("x"), True, True),
        (UpstreamError("x"), True, True),
        (UpstreamError("x", code="upstream_auth"), True, False),
        (UpstreamError("x", code="upstream_model_not_found"), True, False),
        (InvalidRequest("x"), False, False),
        (ContextTooLong("x"), False, False),
        (PayloadTooLarge("x"), False, False),
        (ConnectFailed("x"), True, True),
        (ConnectionBroken("x"), True, True),
        (TimeoutError(), True, True),
        (ConnectionResetError(), True, True),
        (ValueError("bug"), False, False),
    ],
)
def test_retryability(exc: BaseException, retryable: bool, transient: bool) -> None:
    assert is_retryable(exc) is retryable
    assert is_transient(exc) is transient
