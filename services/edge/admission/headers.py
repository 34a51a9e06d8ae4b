"""The rate-limit headers OpenAI sends, from the counters admission just read.

``x-ratelimit-limit-*`` is the key's limit, ``-remaining-*`` what is left after this request, and
``-reset-*`` the time until the window holds none of the current usage (OpenAI's "resets to its
initial state"), written as OpenAI writes it: ``20ms``, ``1s``, ``6m0s``, ``1h2m3s``. A limit the key
does not have gets no headers.
"""

from __future__ import annotations


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


def rate_limit_headers(
    rpm_limit: int | None, rpm_remaining: int, rpm_reset_ms: int,
    tpm_limit: int | None, tpm_remaining: int, tpm_reset_ms: int,
) -> dict[str, str]:
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
