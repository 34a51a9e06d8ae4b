"""Per-key overrides set by an account-scoped caller may only tighten the key's plan.

An account that received a plan from the operator must not be able to grant one of its keys more than
that plan. The operator (admin) may set any override. Rules, per field:

- counts (requests/tokens per minute, concurrency): the override must be ≤ the plan's value; a plan
  without that limit accepts any value, and ``null`` (unlimited) only when the plan is unlimited too;
- budget: when the plan has one, the override keeps the plan's window and an amount ≤ the plan's;
- allowed models: when the plan restricts them, every override entry must be covered by a plan
  entry — equal to it, an id the plan's pattern matches, or a ``*``-pattern inside a ``*``-pattern.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any, Protocol

from services.common.errors import InvalidRequest

COUNTS = ("requests_per_minute", "tokens_per_minute", "max_concurrency")
WIRE_NAMES = {"budget_micros": "budget_amount", "budget_window_seconds": "budget_window"}
_GLOB = frozenset("*?[")


class Row(Protocol):
    """A plan's limit columns: a database record or a dict."""

    def __getitem__(self, key: str, /) -> Any: ...


def _covered(entry: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if entry == pattern:
            return True
        if not _GLOB & set(entry) and fnmatchcase(entry, pattern):
            return True
        # '*' inside '*': each '*' of the entry can only be matched by a '*' of the pattern, so
        # everything the entry matches, the pattern matches too ('?' and '[...]' would break that)
        if not (set(entry) | set(pattern)) & {"?", "["} and fnmatchcase(entry, pattern):
            return True
    return False


def loosened(plan: Row, overrides: Mapping[str, Any]) -> str | None:
    """The first overridden field that grants more than ``plan`` (column names), or None."""
    for name in COUNTS:
        if name in overrides and plan[name] is not None:
            value = overrides[name]
            if value is None or value > plan[name]:
                return name
    if "budget_micros" in overrides and plan["budget_micros"] is not None:
        if overrides["budget_micros"] is None or overrides["budget_micros"] > plan["budget_micros"]:
            return "budget_micros"
        if overrides.get("budget_window_seconds") != plan["budget_window_seconds"]:
            return "budget_window_seconds"
    if "allowed_models" in overrides and plan["allowed_models"] is not None:
        wanted = overrides["allowed_models"]
        if wanted is None or not all(_covered(m, plan["allowed_models"]) for m in wanted):
            return "allowed_models"
    return None


def require_tightening(plan: Row, overrides: Mapping[str, Any]) -> None:
    """400 unless every override stays within ``plan`` (applied to account-scoped callers only): the
    value is invalid for this caller, like any other out-of-range value."""
    field = loosened(plan, overrides)
    if field is not None:
        wire = WIRE_NAMES.get(field, field)
        raise InvalidRequest(
            f"limits.{wire} would grant more than the key's plan allows; an account can only tighten"
            " its plan's limits (ask the platform operator to change the plan).",
            param=f"limits.{wire}", code="limit_exceeds_plan",
        )
