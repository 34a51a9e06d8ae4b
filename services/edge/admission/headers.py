"""The rate-limit headers each API sends, from the counters admission just read, in the dialect of the
client's API.

- **OpenAI**: ``x-ratelimit-limit-*`` is the key's limit, ``-remaining-*`` what is left after this
  request, and ``-reset-*`` the time until the window holds none of the current usage (OpenAI's
  "resets to its initial state"), written as OpenAI writes it: ``20ms``, ``1s``, ``6m0s``, ``1h2m3s``.
- **Anthropic** (the Messages API, and any request carrying ``anthropic-version``):
  ``anthropic-ratelimit-requests-*`` and ``anthropic-ratelimit-tokens-*`` (``limit``, ``remaining``,
  and ``reset``: the moment the limit is fully replenished, in RFC 3339 as Anthropic writes it,
  ``2025-08-21T12:40:59Z``, rounded up to the second so that it is never early). Anthropic also splits
  tokens into input and output limits; a key here has one limit over both, which is the
  ``tokens`` family.

A limit the key does not have gets no headers.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Literal

Dialect = Literal["openai", "anthropic"]


def duration(ms: int) -> str:
    ms = max(ms, 0)
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        text = f"{seconds:.3f}".rstrip("0").rstrip(".")
        return f"{text}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes}m{secs}s" if hours else f"{minutes}m{secs}s"


def reset_at(reset_ms: int, now: float) -> str:
    """The moment ``reset_ms`` after ``now`` (a Unix time), as Anthropic writes it, never early."""
    moment = datetime.fromtimestamp(math.ceil(now + max(reset_ms, 0) / 1000), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def rate_limit_headers(
    rpm_limit: int | None, rpm_remaining: int, rpm_reset_ms: int,
    tpm_limit: int | None, tpm_remaining: int, tpm_reset_ms: int, dialect: Dialect = "openai",
) -> dict[str, str]:
    if dialect == "anthropic":
        return _anthropic(rpm_limit, rpm_remaining, rpm_reset_ms, tpm_limit, tpm_remaining, tpm_reset_ms)
    headers: dict[str, str] = {}
    if rpm_limit is not None:
        headers["x-ratelimit-limit-requests"] = str(rpm_limit)
        headers["x-ratelimit-remaining-requests"] = str(max(rpm_remaining, 0))
        headers["x-ratelimit-reset-requests"] = duration(rpm_reset_ms)
    if tpm_limit is not None:
        headers["x-ratelimit-limit-tokens"] = str(tpm_limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(tpm_remaining, 0))
        headers["x-ratelimit-reset-tokens"] = duration(tpm_reset_ms)
    return headers


def _anthropic(
    rpm_limit: int | None, rpm_remaining: int, rpm_reset_ms: int,
    tpm_limit: int | None, tpm_remaining: int, tpm_reset_ms: int,
) -> dict[str, str]:
    headers: dict[str, str] = {}
    now = time.time()
    for family, limit, remaining, reset_ms in (("requests", rpm_limit, rpm_remaining, rpm_reset_ms),
                                               ("tokens", tpm_limit, tpm_remaining, tpm_reset_ms)):
        if limit is not None:
            headers[f"anthropic-ratelimit-{family}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{family}-remaining"] = str(max(remaining, 0))
            headers[f"anthropic-ratelimit-{family}-reset"] = reset_at(reset_ms, now)
    return headers
