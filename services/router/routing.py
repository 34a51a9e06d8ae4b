"""Which deployments may serve a model, in which order: the router's view of the catalog.

Built from the catalog.v1 snapshot (compacted, followed live), so a catalog change reaches routing
within the snapshot's lag, with no database on the request path. The chain for a model is its own
deployments (highest weight first, zero weight = standby, never primary) followed by their declared
fallback deployments, each deployment once. Deployments that fail active health checks move to the
end of the chain rather than out of it: when everything looks down we still try.
"""

from __future__ import annotations

from collections.abc import Callable

from services.common.events.catalog import AliasEntry, CatalogEventV1, DeploymentEntry, ModelEntry


class RoutingTable:
    def __init__(self, is_healthy: Callable[[str], bool] = lambda _dep: True) -> None:
        self.models: dict[str, ModelEntry] = {}
        self.deployments: dict[str, DeploymentEntry] = {}
        self.aliases: dict[str, str] = {}
        self._is_healthy = is_healthy

    def apply(self, key: str, event: CatalogEventV1 | None) -> None:
        """Snapshot callback: ``key`` is ``<kind>:<id>``; None (tombstone) or ``deleted`` removes."""
        kind, _, entity_id = key.partition(":")
        tables: dict[str, dict[str, ModelEntry] | dict[str, DeploymentEntry] | dict[str, str]] = {
            "model": self.models, "deployment": self.deployments, "alias": self.aliases,
        }
        table = tables.get(kind)
        if table is None:
            return  # prices are the edge's and metering's business, not routing's
        if event is None or event.deleted:
            table.pop(entity_id, None)
            return
        entity = event.entity
        if isinstance(entity, ModelEntry):
            self.models[entity.id] = entity
        elif isinstance(entity, DeploymentEntry):
            self.deployments[entity.id] = entity
        elif isinstance(entity, AliasEntry):
            self.aliases[entity.id] = entity.target

    def resolve(self, model: str) -> str:
        """Follow an alias (one hop, as the catalog never points an alias at an alias)."""
        return self.aliases.get(model, model)

    def chain(self, model: str) -> list[DeploymentEntry]:
        model_id = self.resolve(model)
        own = sorted(
            (d for d in self.deployments.values() if d.model_id == model_id and d.weight > 0),
            key=lambda d: (-d.weight, d.id),
        )
        ordered: list[DeploymentEntry] = []
        seen: set[str] = set()
        for dep in own:
            for candidate_id in (dep.id, *dep.fallback):
                candidate = self.deployments.get(candidate_id)
                if candidate is not None and candidate.id not in seen:
                    seen.add(candidate.id)
                    ordered.append(candidate)
        healthy = [d for d in ordered if self._is_healthy(d.id)]
        return healthy + [d for d in ordered if not self._is_healthy(d.id)]
