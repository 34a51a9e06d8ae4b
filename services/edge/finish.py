"""What the router's ``Finish`` means to a client: a clean end with a reason, or an error.

The router ends every stream with exactly one ``Finish``. ``finish_reason`` ``"error"`` (a failure
after the first delta) and ``"cancelled"`` must reach the client as an explicit error, never as a clean
finish (DESIGN promise 7), and so must a reason this edge does not know: a newer router that invents
one should be noticed, not silently reported as success.
"""

from __future__ import annotations

from services.common.errors import (
    ContextTooLong,
    DependencyUnavailable,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    TollgateError,
    UnsupportedByBackend,
    UpstreamError,
    UpstreamTimeout,
)
from tollgate.router.v1 import router_pb2

CLEAN_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "stop_sequence"})

# The router sends ``TollgateError.code``; the default codes recover the error's class, and with it
# the right OpenAI/Anthropic error type (an overloaded backend stays ``overloaded_error``).
_BY_CODE: dict[str, type[TollgateError]] = {
    cls.default_code: cls
    for cls in (ContextTooLong, DependencyUnavailable, Overloaded, PayloadTooLarge, RateLimited,
                UnsupportedByBackend, UpstreamError, UpstreamTimeout)
    if cls.default_code is not None
}
_INTERRUPTED = "The response was interrupted by a backend failure after it had started; it is incomplete."


def finish_error(finish: router_pb2.Finish) -> TollgateError | None:
    """The error this Finish stands for, or None when generation ended cleanly."""
    reason = finish.finish_reason
    if reason in CLEAN_REASONS:
        return None
    if reason == "error":
        cls = _BY_CODE.get(finish.error_code, UpstreamError)
        return cls(finish.error_message or _INTERRUPTED, code=finish.error_code or None)
    if reason == "cancelled":
        return UpstreamError("The request was cancelled before it finished; the response is incomplete.",
                             code="cancelled")
    return UpstreamError(f"{_INTERRUPTED} (unknown finish reason {reason!r})")


def error_for_code(code: str, message: str, param: str | None = None) -> TollgateError | None:
    """The error class a router error code stands for (None when the code is not a known default)."""
    cls = _BY_CODE.get(code)
    return cls(message, code=code, param=param) if cls is not None else None


def response_id(prefix: str, request_id: str) -> str:
    """``chatcmpl-…``, ``cmpl-…``, ``msg_…``: the vendor's familiar prefix on our one request id.

    The hex part stays that of ``x-request-id`` (``req_…``), so a response id a customer pastes into a
    support ticket finds the request's events and logs.
    """
    return prefix + request_id.removeprefix("req_")


def unsent_arguments(sent: str, whole: str) -> str:
    """What a streamed tool call still lacks at the end: its whole arguments past the pieces already
    ``sent``. Raises when those pieces are not the start of the call, since they cannot be taken back."""
    if not whole.startswith(sent):
        raise UpstreamError("a tool call's streamed arguments differ from the call the model finished with",
                            code="upstream_bad_response")
    return whole[len(sent):]
