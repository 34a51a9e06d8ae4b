"""Turn what an upstream provider answered into our error classes, so fallback can act on it.

Two questions drive every mapping. *Whose fault is it?* A 401 from a provider means the platform's
credentials are wrong, not the client's key, so it must never reach the client as a 401; a 400 means
the request itself is bad and every backend would refuse it. *Can another attempt succeed?*
``is_retryable`` answers that for the fallback chain (see promise 7: retries only before the first
byte, which the router, not this module, keeps track of).

What a client may read: the provider's own text only where it tells the client what to fix (4xx
request errors), scrubbed of anything that looks like a credential or an account id. For failures the
client cannot act on (rate limits, 5xx, overload) we write our own neutral message, because the
provider's text names the provider, our organisation and its support URLs. The provider's scrubbed
text is still attached as an exception note (``add_note``) so operators see it in logs.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
import orjson

from services.common.errors import (
    ContextTooLong,
    DependencyUnavailable,
    InvalidRequest,
    Overloaded,
    PayloadTooLarge,
    RouterBusy,
    TollgateError,
    UpstreamError,
    UpstreamTimeout,
)
from services.router.backends.http_client import BadResponse, ConnectFailed, PoolFull, TransportError

MAX_MESSAGE_CHARS = 500

# Codes the router and the edge can rely on (``exc.code``).
UPSTREAM_AUTH = "upstream_auth"
UPSTREAM_MODEL_NOT_FOUND = "upstream_model_not_found"
UPSTREAM_QUOTA = "upstream_quota_exhausted"
UPSTREAM_UNREACHABLE = "upstream_unreachable"
UPSTREAM_CONNECTION_LOST = "upstream_connection_lost"
UPSTREAM_BAD_RESPONSE = "upstream_bad_response"
UPSTREAM_INCOMPLETE = "upstream_incomplete"


class UpstreamRateLimited(UpstreamError):
    """The provider throttled *us* (429).

    It is an ``UpstreamError`` so fallback treats it like any provider failure and tries the next
    backend; it renders as 429 because the router only lets it reach a client once every fallback is
    exhausted, and then "slow down and retry after N seconds" is exactly the right advice (it carries
    the provider's ``Retry-After`` as ``retry_after``).
    """

    http_status = 429
    openai_type = "rate_limit_error"
    anthropic_type = "rate_limit_error"
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_code = "upstream_rate_limited"


# Provider configuration problems: the next backend may well succeed, the same one will not.
_CONFIG_CODES = frozenset({UPSTREAM_AUTH, UPSTREAM_MODEL_NOT_FOUND, UPSTREAM_QUOTA})

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sk-[A-Za-z0-9_\-*.]{3,}"), "[redacted]"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-~+/=]+"), "Bearer [redacted]"),
    (re.compile(r"(?i)(x-api-key|api[_ -]?key)(\s*[:=]\s*)\S+"), r"\1\2[redacted]"),
    (re.compile(r"\borg-[A-Za-z0-9]{6,}"), "[redacted]"),
    (re.compile(r"\bproj_[A-Za-z0-9]{6,}"), "[redacted]"),
    (re.compile(r"(?i)(organization\s*)\(?[0-9a-f]{8}-[0-9a-f-]{27}\)?"), r"\1[redacted]"),
)
_CONTEXT_TOO_LONG = re.compile(
    r"(?i)prompt is too long|maximum context length|context[ _](length|window|limit)"
)
POOL_FULL_RETRY_AFTER = 1.0  # seconds: connections free up as answers end, usually within moments


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without credentials or account ids: known secrets verbatim, then key-like shapes."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text[:MAX_MESSAGE_CHARS]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asks us to wait: OpenAI's ``retry-after-ms``, else ``Retry-After``
    as seconds or an HTTP date."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _fields(body: Any) -> tuple[str, str, str]:
    """(message, type, code) from any of the error shapes OpenAI-compatible servers and Anthropic use."""
    if not isinstance(body, dict):
        return "", "", ""
    err = body.get("error")
    if isinstance(err, dict):
        source: dict[str, Any] = err
    elif isinstance(err, str):
        return err, "", ""
    else:
        source = body  # vLLM: {"object": "error", "message", "type", "code"}; FastAPI: {"detail"}
    message = source.get("message") or source.get("detail") or ""
    etype = source.get("type") or ""
    code = source.get("code")
    return (
        message if isinstance(message, str) else str(message),
        etype if isinstance(etype, str) else str(etype),
        "" if code is None else str(code),
    )


def _parse(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes, secrets: Iterable[str] = ()
) -> TollgateError:
    """The error an upstream's non-2xx answer (before any streaming) stands for."""
    message, etype, code = _fields(_parse(body))
    provider_text = redact(message, secrets)
    wait = retry_after(headers)
    exc: TollgateError
    if status == 529 or etype == "overloaded_error":
        exc = Overloaded("the upstream provider is overloaded; retry later", retry_after=wait)
    elif status in (401, 403):
        exc = UpstreamError(
            "the upstream provider rejected the platform's credentials (operator configuration)",
            code=UPSTREAM_AUTH,
        )
    elif status == 402 or code == "insufficient_quota" or etype == "insufficient_quota":
        exc = UpstreamError("the platform's upstream account has no remaining quota", code=UPSTREAM_QUOTA)
    elif status == 404:
        exc = UpstreamError(
            "the upstream provider does not serve this model (operator configuration)",
            code=UPSTREAM_MODEL_NOT_FOUND,
        )
    elif status == 408 or status == 504:
        exc = UpstreamTimeout("the upstream provider timed out", retry_after=wait)
    elif status == 413:
        exc = PayloadTooLarge(provider_text or "request too large for the upstream provider")
    elif status == 429:
        exc = UpstreamRateLimited("the upstream provider is rate limiting requests", retry_after=wait)
    elif 400 <= status < 500:
        text = provider_text or f"the upstream provider refused the request (HTTP {status})"
        if code == "context_length_exceeded" or _CONTEXT_TOO_LONG.search(message):
            exc = ContextTooLong(text)
        else:
            exc = InvalidRequest(text)
    else:
        exc = UpstreamError(f"the upstream provider failed (HTTP {status})", retry_after=wait)
    if provider_text:
        exc.add_note(f"upstream said (HTTP {status}, {etype or '-'}/{code or '-'}): {provider_text}")
    return exc


def error_from_stream_event(body: Any, secrets: Iterable[str] = ()) -> TollgateError:
    """An error the provider sent *inside* a stream (OpenAI ``data: {"error": ...}``, Anthropic
    ``event: error``): the response already started, so only overload and throttling keep their
    identity; everything else is a provider failure."""
    message, etype, code = _fields(body)
    exc: TollgateError
    if etype == "overloaded_error":
        exc = Overloaded("the upstream provider became overloaded mid-stream")
    elif etype == "rate_limit_error" or code == "rate_limit_exceeded":
        exc = UpstreamRateLimited("the upstream provider rate limited the stream")
    else:
        exc = UpstreamError(f"the upstream provider failed mid-stream ({etype or 'error'})")
    if message:
        exc.add_note(f"upstream said: {redact(message, secrets)}")
    return exc


def error_from_transport(exc: TransportError | TimeoutError) -> TollgateError:
    """Network failures, worded without the host name (which may name the provider)."""
    if isinstance(exc, TimeoutError):  # the connect step's limit, or ReadWatch's silence
        return UpstreamTimeout("the upstream provider did not answer in time")
    if isinstance(exc, PoolFull):
        return RouterBusy("The model router has no free connection to the model's providers; try again "
                          "shortly.", retry_after=POOL_FULL_RETRY_AFTER)
    if isinstance(exc, ConnectFailed):
        return UpstreamError("could not connect to the upstream provider", code=UPSTREAM_UNREACHABLE)
    if isinstance(exc, BadResponse):
        return UpstreamError("the upstream provider sent an undecodable response", code=UPSTREAM_BAD_RESPONSE)
    return UpstreamError("the connection to the upstream provider broke", code=UPSTREAM_CONNECTION_LOST)


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt, on the next backend of the fallback chain, may succeed.

    Only meaningful before the first byte reached the client. Request errors (400, 413, context too
    long) fail everywhere, so no. Throttling, 5xx, overload, timeouts and broken connections: yes. A
    provider's configuration failures (our credentials, a missing model, exhausted quota) are yes too:
    they are not the client's fault and another provider can serve the request. Use ``is_transient``
    to decide whether retrying the *same* backend is worth it.
    """
    if isinstance(exc, InvalidRequest):
        return False
    if isinstance(exc, (UpstreamError, Overloaded, UpstreamTimeout, DependencyUnavailable)):
        return True
    return isinstance(exc, (TransportError, TimeoutError, ConnectionError))


def is_transient(exc: BaseException) -> bool:
    """Whether the *same* backend may succeed after a pause (not so for configuration failures)."""
    if isinstance(exc, UpstreamError) and exc.code in _CONFIG_CODES:
        return False
    return is_retryable(exc)


def missing_credentials() -> UpstreamError:
    return UpstreamError("no credentials are configured for the upstream provider", code=UPSTREAM_AUTH)


def incomplete_stream() -> UpstreamError:
    return UpstreamError("the upstream stream ended before it was complete", code=UPSTREAM_INCOMPLETE)


def parse_event(data: str) -> dict[str, Any]:
    """One event's JSON object; anything else means the provider broke the protocol."""
    doc = _parse(data)
    if not isinstance(doc, dict):
        raise UpstreamError("the upstream provider sent a malformed event", code=UPSTREAM_BAD_RESPONSE)
    return doc
