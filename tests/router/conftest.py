"""Shared fixtures for router tests: the replaying upstream and one HTTP client per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.upstream.harness import upstream  # noqa: F401 - session fixture, re-exported for pytest


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def tag() -> str:
    """A suffix that makes this test's upstream model name (and so its stats) its own."""
    return uuid.uuid4().hex[:10]
