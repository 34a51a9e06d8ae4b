"""The Anthropic model list's query: lifecycle stages as the SDKs send them, and the page size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.datastructures import QueryParams

from services.common.errors import InvalidRequest
from services.common.events.catalog import ModelEntry
from services.edge.catalog_view import lifecycle
from services.edge.routes.models import _lifecycles, _limit


@pytest.mark.parametrize(("query", "stages"), [
    ("", {"active", "deprecated"}),  # retired models only when asked for, as at Anthropic
    ("lifecycle[]=retired", {"retired"}),  # the Python SDK's brackets
    ("lifecycle[]=active&lifecycle[]=retired", {"active", "retired"}),
    ("lifecycle=deprecated,retired", {"deprecated", "retired"}),
])
def test_lifecycle_stages(query: str, stages: set[str]) -> None:
    assert _lifecycles(QueryParams(query)) == stages


@pytest.mark.parametrize("query", ["lifecycle[]=gone", "lifecycle=active,active,active,active", "lifecycle="])
def test_unknown_or_too_many_stages_are_refused(query: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _lifecycles(QueryParams(query))
    assert refused.value.param == "lifecycle"


@pytest.mark.parametrize(("query", "limit"), [("", 20), ("limit=1", 1), ("limit=1000", 1000)])
def test_page_size(query: str, limit: int) -> None:
    assert _limit(QueryParams(query)) == limit


@pytest.mark.parametrize("raw", ["0", "1001", "-1", "ten", "2.5", "²", "1" * 5000])
def test_a_page_size_out_of_range_is_refused(raw: str) -> None:
    with pytest.raises(InvalidRequest, match="1 to 1000"):
        _limit(QueryParams({"limit": raw}))


def test_a_models_lifecycle_follows_its_deprecation_and_sunset() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    model = ModelEntry(id="m", display_name="M", context_length=8, max_output_tokens=8)
    deprecated = model.model_copy(update={"deprecated_at": now - timedelta(days=1), "sunset_at": now + timedelta(days=1)})
    retired = deprecated.model_copy(update={"sunset_at": now - timedelta(seconds=1)})
    assert [lifecycle(m, now) for m in (model, deprecated, retired)] == ["active", "deprecated", "retired"]
