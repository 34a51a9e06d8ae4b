"""Budget windows as people write them: an integer and a unit, ``"90m"``, ``"5h"``, ``"30d"``, ``"1w"``.

Stored as seconds. Rendered canonically with the largest unit that divides the length exactly
(``"24h"`` is shown as ``"1d"``), so one length has one spelling. Bounds: a window shorter than a
minute is a rate limit, not a budget; one longer than 366 days never resets in practice.
"""

from __future__ import annotations

import re

UNITS: dict[str, int] = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
MIN_SECONDS = 60
MAX_SECONDS = 366 * 86_400
PATTERN = r"^(0|[1-9][0-9]{0,9})[smhdw]$"
_RE = re.compile(PATTERN)


def parse_window(text: str) -> int:
    """``"5h"`` → 18000. Raises ValueError with a message fit for an API client."""
    match = _RE.fullmatch(text)
    if match is None:
        raise ValueError(
            "budget_window must be a whole number and a unit s, m, h, d or w, such as \"5h\" or \"30d\""
        )
    seconds = int(match.group(1)) * UNITS[text[-1]]
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError("budget_window must be between 60s and 366d (inclusive)")
    return seconds


def format_window(seconds: int) -> str:
    """18000 → ``"5h"``: the largest unit that divides ``seconds`` exactly."""
    if seconds <= 0:
        raise ValueError(f"a window is a positive number of seconds (got {seconds})")
    for unit, size in UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every length is a whole number of seconds")
