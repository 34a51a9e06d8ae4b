"""Which deployments may serve a model, in which order: the router's view of the catalog.

Built from the catalog.v1 snapshot (compacted, followed live), so a catalog change reaches routing
within the snapshot's lag, with no database on the request path.

The chain for one request: the model's own deployments in a weighted order (a deployment leads in
proportion to its weight: two Triton servers at weight 1 each take half the requests, a provider at
3 beside one at 1 takes three quarters), each followed by its declared fallbacks, then the model's
standby deployments (weight 0) and theirs, each deployment once. Deployments that fail active health
checks move to the end of the chain rather than out of it: when everything looks down we still try.

The weighted order is drawn at random for each request (Efraimidis-Spirakis: sort by u ** (1 / weight)),
so it needs no state shared between requests or router replicas, and every replica keeps the
catalog's proportions on its own. A request with an affinity key (the client's prompt cache key, else
its end user) takes u from a hash of the key and the deployment instead: weighted rendezvous hashing.
Requests with one key then lead with the same deployment, where their prompt prefix is in the KV cache
(or the provider account holds its prompt cache); keys still spread over deployments by weight, and a
deployment added or removed moves only the keys it gains or loses. Affinity must not turn one busy
key into one overloaded deployment, so it is bounded (consistent hashing with bounded loads, Mirrokni,
Thorup and Zadimoghaddam, 2018): a deployment running more than ``AFFINITY_BALANCE`` times its weighted
share of the model's attempts in flight in this router gives its place to the next in the key's order.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping

from services.common.events.catalog import AliasEntry, CatalogEventV1, DeploymentEntry, ModelEntry

AFFINITY_BALANCE = 1.25  # a deployment may carry up to 125% of its share before keys spill over


def _key_uniform(key: str, deployment_id: str) -> float:
    """A number in [0, 1) fixed by the key and the deployment: the key's draw for that deployment."""
    digest = hashlib.blake2b(f"{key}\0{deployment_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2.0**64


def _within_share(ordered: list[DeploymentEntry], in_flight: Mapping[str, int]) -> list[DeploymentEntry]:
    """``ordered`` with the deployments over their bounded share moved behind the others. Some
    deployment is always under its bound: the bounds add up to more than the attempts running."""
    total = sum(in_flight.get(d.id, 0) for d in ordered) + 1  # this request's attempt included
    weights = sum(d.weight for d in ordered)
    under: list[DeploymentEntry] = []
    over: list[DeploymentEntry] = []
    for dep in ordered:
        bound = math.ceil(AFFINITY_BALANCE * total * dep.weight / weights)
        (under if in_flight.get(dep.id, 0) < bound else over).append(dep)
    return under + over


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

    def chain(
        self, model: str, affinity: str = "", in_flight: Mapping[str, int] | None = None
    ) -> list[DeploymentEntry]:
        """The deployments to try for one request, in order. ``affinity``: the request's key (empty:
        none); ``in_flight``: attempts running per deployment, which bound the key's preference."""
        model_id = self.resolve(model)
        serving = self._serving.get(model_id, {})
        # sort by u ** (1 / weight), u uniform in [0, 1): the first place goes to each deployment in
        # proportion to its weight, and so on down; u random per request, or fixed by the key
        draw: Callable[[DeploymentEntry], float] = (
            (lambda d: _key_uniform(affinity, d.id) ** (1.0 / d.weight)) if affinity
            else (lambda d: self._random() ** (1.0 / d.weight))
        )
        active = sorted((d for d in serving.values() if d.weight > 0), key=draw, reverse=True)
        if affinity and len(active) > 1:
            active = _within_share(active, in_flight or {})
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
