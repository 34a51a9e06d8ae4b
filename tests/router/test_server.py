"""The account of a call its caller cancelled before the backend said how long the prompt was: the
deployment's count of the prompt when it can give one in time, else zero, each counted per deployment."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from services.common.errors import UnsupportedByBackend, UpstreamError
from services.router import server
from services.router.backends import Outcome
from services.router.fallback import Served


def _served(deployment: str, count: object) -> Served:
    async def count_prompt() -> int:
        if isinstance(count, BaseException):
            raise count
        if count is None:
            await asyncio.sleep(10)  # a count that never comes in time
        assert isinstance(count, int)
        return count

    return Served(Outcome(), deployment_id=deployment, count_prompt=count_prompt)


def _metric(kind: str, deployment: str) -> float:
    name = f"tollgate_router_cancelled_input_{kind}_total"
    return REGISTRY.get_sample_value(name, {"deployment": deployment}) or 0.0


@pytest.mark.parametrize(("count", "billed", "metric"), [
    (17, 17, "counted"),
    (UnsupportedByBackend("cannot count"), 0, "unknown"),
    (UpstreamError("count failed"), 0, "unknown"),
    (None, 0, "unknown"),
])
async def test_a_cut_prompt_is_billed_as_the_deployment_counts_it_or_zero(
    monkeypatch: pytest.MonkeyPatch, count: object, billed: int, metric: str
) -> None:
    monkeypatch.setattr(server, "CANCELLED_COUNT_SECONDS", 0.1)
    deployment = f"dep-{metric}-{type(count).__name__}"
    before = _metric(metric, deployment)
    assert await server._count_cut_prompt(_served(deployment, count)) == billed
    assert _metric(metric, deployment) == before + 1


async def test_a_call_that_never_reached_a_deployment_counts_nothing() -> None:
    assert await server._count_cut_prompt(Served(Outcome())) == 0
