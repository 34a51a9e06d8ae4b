"""An account-scoped caller may only tighten its keys' plan; anything looser is named."""

from __future__ import annotations

from typing import Any

import pytest

from services.billing.manage.limits import loosened

PLAN: dict[str, Any] = {
    "requests_per_minute": 100, "tokens_per_minute": None, "max_concurrency": 4,
    "budget_micros": 20_000_000, "budget_window_seconds": 86_400, "allowed_models": ["gpt-4o*", "smollm2-135m"],
}
OPEN_PLAN: dict[str, Any] = dict.fromkeys(PLAN)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"requests_per_minute": 100}, {"requests_per_minute": 0}, {"tokens_per_minute": 10**9},
     {"tokens_per_minute": None}, {"max_concurrency": 1},
     {"budget_micros": 5_000_000, "budget_window_seconds": 86_400},
     {"allowed_models": []}, {"allowed_models": ["gpt-4o-mini"]}, {"allowed_models": ["gpt-4o-*"]},
     {"allowed_models": ["smollm2-135m", "gpt-4o"]}],
)
def test_tighter_or_equal_overrides_pass(overrides: dict[str, Any]) -> None:
    assert loosened(PLAN, overrides) is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"requests_per_minute": 101}, "requests_per_minute"),
     ({"requests_per_minute": None}, "requests_per_minute"),
     ({"max_concurrency": 5}, "max_concurrency"),
     ({"budget_micros": 20_000_001, "budget_window_seconds": 86_400}, "budget_micros"),
     ({"budget_micros": None, "budget_window_seconds": None}, "budget_micros"),
     ({"budget_micros": 1_000_000, "budget_window_seconds": 3_600}, "budget_window_seconds"),
     ({"allowed_models": None}, "allowed_models"),
     ({"allowed_models": ["gpt-5"]}, "allowed_models"),
     ({"allowed_models": ["*"]}, "allowed_models"),
     ({"allowed_models": ["gpt-4?"]}, "allowed_models"),
     ({"allowed_models": ["smollm2-*"]}, "allowed_models")],
)
def test_looser_overrides_are_named(overrides: dict[str, Any], field: str) -> None:
    assert loosened(PLAN, overrides) == field


def test_an_unlimited_plan_accepts_any_override() -> None:
    everything = {"requests_per_minute": 10**6, "tokens_per_minute": None, "max_concurrency": 0,
                  "budget_micros": 1, "budget_window_seconds": 60, "allowed_models": ["*"]}
    assert loosened(OPEN_PLAN, everything) is None
