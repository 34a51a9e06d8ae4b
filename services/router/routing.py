"""Which deployments may serve a model, in which order: the router's view of the catalog.

Built from the catalog.v1 snapshot (compacted, followed live), so a catalog change reaches routing
within the snapshot's lag, with no database on the request path.

The chain for one request: the model's own deployments in a weighted random order (a deployment
leads in proportion to its weight: two Triton servers at weight 1 each take half the requests, a
provider at 3 beside one at 1 takes three quarters), each followed by its declared fallbacks, then
the model's standby deployments (weight 0) and theirs, each deployment once. Random rather than
turns: it needs no state shared between requests or between router replicas, and every replica keeps
the catalog's proportions on its own. Deployments that fail active health checks move to the end of
the chain rather than out of it: when everything looks down we still try.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from services.common.events.catalog import AliasEntry, CatalogEventV1, DeploymentEntry, ModelEntry


class RoutingTable:
    def __init__(
        self, is_healthy: Callable[[str], bool] = lambda _dep: True, rng: random.Random | None = None
    ) -> None:
        self.models: dict[str, ModelEntry] = {}
        self.deployments: dict[str, DeploymentEntry] = {}
        self._serving: dict[str, dict[str, DeploymentEntry]] = {}  # model id -> its own deployments
        self.aliases: dict[str, str] = {}
        self._is_healthy = is_healthy
        self._random = (rng or random.Random()).random

    def apply(self, key: str, event: CatalogEventV1 | None) -> None:
        """Snapshot callback: ``key`` is ``<kind>:<id>``; None (tombstone) or ``deleted`` removes."""
        kind, _, entity_id = key.partition(":")
        tables: dict[str, dict[str, ModelEntry] | dict[str, DeploymentEntry] | dict[str, str]] = {
            "model": self.models, "deployment": self.deployments, "alias": self.aliases,
        }
        table = tables.get(kind)
        if table is None:
            return  # prices are the edge's and metering's business, not routing's
        if kind == "deployment":
            self._unindex(entity_id)
        if event is None or event.deleted:
            table.pop(entity_id, None)
            return
        entity = event.entity
        if isinstance(entity, ModelEntry):
            self.models[entity.id] = entity
        elif isinstance(entity, DeploymentEntry):
            self.deployments[entity.id] = entity
            self._serving.setdefault(entity.model_id, {})[entity.id] = entity
        elif isinstance(entity, AliasEntry):
            self.aliases[entity.id] = entity.target

    def _unindex(self, deployment_id: str) -> None:
        old = self.deployments.get(deployment_id)
        if old is not None:
            serving = self._serving.get(old.model_id, {})
            serving.pop(deployment_id, None)
            if not serving:
                self._serving.pop(old.model_id, None)

    def resolve(self, model: str) -> str:
        """Follow an alias (one hop, as the catalog never points an alias at an alias)."""
        return self.aliases.get(model, model)

    def chain(self, model: str) -> list[DeploymentEntry]:
        model_id = self.resolve(model)
        serving = self._serving.get(model_id, {})
        # weighted random order (Efraimidis-Spirakis): sort by u ** (1 / weight), u uniform in [0, 1);
        # the first place goes to each deployment in proportion to its weight, and so on down
        active = sorted(
            (d for d in serving.values() if d.weight > 0),
            key=lambda d: self._random() ** (1.0 / d.weight), reverse=True,
        )
        standby = sorted((d for d in serving.values() if d.weight == 0), key=lambda d: d.id)
        ordered: list[DeploymentEntry] = []
        seen: set[str] = set()
        for dep in (*active, *standby):
            for candidate_id in (dep.id, *dep.fallback):
                candidate = self.deployments.get(candidate_id)
                if candidate is not None and candidate.id not in seen:
                    seen.add(candidate.id)
                    ordered.append(candidate)
        healthy = [d for d in ordered if self._is_healthy(d.id)]
        return healthy + [d for d in ordered if not self._is_healthy(d.id)]
