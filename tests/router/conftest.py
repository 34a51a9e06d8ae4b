"""Shared fixtures for router tests: the replaying upstream and one HTTP client per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from services.router.backends.http import ProviderHTTP, new_provider_http
from tests.upstream.harness import upstream  # noqa: F401 - session fixture, re-exported for pytest


@pytest.fixture
async def http() -> AsyncIterator[ProviderHTTP]:
    """The router's own pooled session, as the backend pool builds it."""
    async with new_provider_http(max_connections=16) as client:
        yield client


@pytest.fixture
def tag() -> str:
    """A suffix that makes this test's upstream model name (and so its stats) its own."""
    return uuid.uuid4().hex[:10]
