"""One live client per deployment, built from its catalog entry and rebuilt when the entry changes.

Provider backends share one pooled HTTP client (keep-alive connections across requests); each
Triton deployment has its own gRPC channel. Credentials are named by the entry
(``credentials_env``) and read from the router's environment by the adapter, never stored here.
"""

from __future__ import annotations

import asyncio

import structlog

from services.common.events.catalog import DeploymentEntry, DeploymentFeature
from services.router.backends import Backend
from services.router.backends.anthropic import AnthropicBackend
from services.router.backends.http import DEFAULT_TIMEOUTS, ProviderHTTP, ReadTimeouts, new_provider_http
from services.router.backends.openai_compat import OpenAICompatBackend, is_openai_api
from services.router.backends.triton import TritonBackend

log = structlog.get_logger(__name__)


def openai_features(entry: DeploymentEntry) -> tuple[DeploymentFeature, ...]:
    """The catalog's list when it gives one; else what the endpoint says: OpenAI's own API takes
    max_completion_tokens (its reasoning models refuse max_tokens), routes its cache by
    prompt_cache_key, fetches image URLs on its side and counts input tokens, while other servers are
    assumed to take OpenAI's common subset only."""
    if entry.features is not None:
        return entry.features
    if is_openai_api(entry.endpoint):
        return ("max_completion_tokens", "prompt_cache_key", "image_urls", "input_tokens")
    return ()


class BackendPool:
    def __init__(
        self, provider_timeouts: ReadTimeouts = DEFAULT_TIMEOUTS, max_connections: int = 512,
        pool_wait: float | None = None,
    ) -> None:
        # built in the running loop (the service's main)
        self._http = new_provider_http(max_connections, pool_wait)
        self._timeouts = provider_timeouts
        self._backends: dict[str, tuple[DeploymentEntry, Backend]] = {}
        self.health: dict[str, bool] = {}

    @property
    def provider_http(self) -> ProviderHTTP:
        return self._http

    def get(self, entry: DeploymentEntry) -> Backend:
        cached = self._backends.get(entry.id)
        if cached is not None and cached[0] == entry:
            return cached[1]
        backend = self._build(entry)
        self._backends[entry.id] = (entry, backend)
        if cached is not None:
            asyncio.get_running_loop().create_task(cached[1].close())  # the entry changed
        return backend

    def _build(self, entry: DeploymentEntry) -> Backend:
        if entry.backend == "triton":
            return TritonBackend(entry.endpoint, entry.upstream_model)
        if entry.backend == "openai":
            features = set(openai_features(entry))
            limit_field = "max_completion_tokens" if "max_completion_tokens" in features else "max_tokens"
            return OpenAICompatBackend(
                entry.endpoint, entry.credentials_env, self._http, self._timeouts,
                max_tokens_field=limit_field,
                send_top_k="top_k" in features,
                send_prompt_cache_key="prompt_cache_key" in features,
                continuous_usage="continuous_usage" in features,
                tokenize="tokenize" in features,
                input_tokens="input_tokens" in features,
                image_urls="image_urls" in features,
            )
        return AnthropicBackend(entry.endpoint, entry.credentials_env, self._http, self._timeouts)

    def is_healthy(self, deployment_id: str) -> bool:
        return self.health.get(deployment_id, True)

    async def check_health(self, entries: list[DeploymentEntry]) -> None:
        """Active health check of every deployment (run periodically by the service)."""

        async def one(entry: DeploymentEntry) -> None:
            try:
                ok = await asyncio.wait_for(self.get(entry).ready(), 3.0)
            except Exception:  # noqa: BLE001 - unreachable is simply unhealthy
                ok = False
            if self.health.get(entry.id, True) != ok:
                log.info("deployment_health_changed", deployment=entry.id, healthy=ok)
            self.health[entry.id] = ok

        await asyncio.gather(*(one(e) for e in entries))

    async def close(self) -> None:
        for _, backend in self._backends.values():
            await backend.close()
        await self._http.close()
