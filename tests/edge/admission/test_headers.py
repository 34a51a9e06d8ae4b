"""Rate-limit headers in each API's dialect: OpenAI's durations, Anthropic's RFC 3339 moments."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from services.edge.admission.headers import rate_limit_headers, reset_at


def test_openai_clients_get_durations_until_the_window_is_clear() -> None:
    headers = rate_limit_headers(60, 59, 1000, 1000, 0, 6 * 60_000)
    assert headers == {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s", "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s",
    }


def test_anthropic_clients_get_the_moment_of_full_replenishment() -> None:
    before = time.time()
    headers = rate_limit_headers(60, -3, 1500, None, 0, 0, "anthropic")
    assert set(headers) == {"anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
                            "anthropic-ratelimit-requests-reset"}  # no tokens limit, no tokens headers
    assert headers["anthropic-ratelimit-requests-limit"] == "60"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"  # never negative
    moment = datetime.strptime(headers["anthropic-ratelimit-requests-reset"], "%Y-%m-%dT%H:%M:%SZ")
    assert before + 1.5 <= moment.replace(tzinfo=UTC).timestamp() <= time.time() + 2.5


def test_a_reset_is_rounded_up_to_the_second_never_early() -> None:
    assert reset_at(1, 1_767_225_600.0) == "2026-01-01T00:00:01Z"
    assert reset_at(0, 1_767_225_600.0) == "2026-01-01T00:00:00Z"
    assert reset_at(-5, 1_767_225_599.2) == "2026-01-01T00:00:00Z"
