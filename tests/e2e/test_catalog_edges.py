"""Catalog changes made through the management API reach every edge and the router within 2 s
(the catalog service running for real, its outbox publishing on catalog.v1)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Iterator

import httpx
import pytest

from infra.stack.platform import Platform
from tests.e2e.edges import HI, Edges, auth, edges_fixture, more_edges_fixture  # noqa: F401 - module fixtures
from tests.e2e.test_management_edges import _until_all_edges

PROPAGATION_SECONDS = 2.0


@pytest.fixture(scope="module")
def catalog(platform: Platform) -> Iterator[None]:
    services = [platform.services["catalog"], platform.services["billing"]]  # billing: the OpenAPI base
    for service in services:
        service.start()
    try:
        for service in services:
            service.wait_ready()
        yield
    finally:
        for service in services:
            service.stop()


async def test_a_model_added_through_the_api_is_served_by_every_edge_within_2_seconds(
    edges: Edges, catalog: None, platform: Platform
) -> None:
    model = f"api-model-{uuid.uuid4().hex[:6]}"
    _, secret = await edges.new_key()
    admin = {"authorization": f"Bearer {platform.admin_key}"}
    async with httpx.AsyncClient(base_url=edges.url(0), headers=admin, timeout=30) as client:
        started = time.monotonic()
        created = await client.put(f"/v1/manage/models/{model}", json={
            "display_name": model, "context_length": 8192, "max_output_tokens": 512,
        })
        assert created.status_code == 201, created.text
        deployed = await client.put(f"/v1/manage/models/{model}/deployments/{model}-dep", json={
            "backend": "openai", "endpoint": edges.stack.upstream.openai_base_url, "upstream_model": f"ok:{model}",
        })
        assert deployed.status_code in (200, 201), deployed.text
        priced = await client.post(f"/v1/manage/models/{model}/prices", json={"input": "0.15", "output": "0.60"})
        assert priced.status_code == 201, priced.text

    def chat(c: httpx.AsyncClient, url: str) -> Awaitable[httpx.Response]:
        return c.post(f"{url}/v1/chat/completions", headers=auth(secret), json={"model": model, "messages": HI})

    await _until_all_edges(edges, lambda r: r.status_code == 200, chat)  # edge and router both know it
    assert time.monotonic() - started < PROPAGATION_SECONDS + 1.0  # three API calls, then propagation
    async with httpx.AsyncClient(timeout=30) as client:
        listed = (await client.get(f"{edges.url(1)}/v1/models", headers=auth(secret))).json()["data"]
    entry = next(m for m in listed if m["id"] == model)
    assert entry["pricing"]["prompt"] == "0.00000015" and entry["pricing"]["completion"] == "0.0000006"

    async with httpx.AsyncClient(base_url=edges.url(2), headers=admin, timeout=30) as client:
        changed = time.monotonic()
        patched = await client.patch(f"/v1/manage/models/{model}", json={
            "deprecated_at": "2026-01-01T00:00:00Z", "sunset_at": "2026-02-01T00:00:00Z",
        })
        assert patched.status_code == 200, patched.text
    await _until_all_edges(edges, lambda r: r.status_code == 410, chat)  # past its sunset: gone everywhere
    assert time.monotonic() - changed < PROPAGATION_SECONDS
