"""The edge's view of the catalog: which public model ids exist, what they resolve to, what a key may
use, and the price list shown by ``GET /v1/models``. Fed by the catalog.v1 snapshot (no database).
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Literal

from services.common.errors import Gone, NotFound
from services.common.events.catalog import AliasEntry, CatalogEventV1, ModelEntry, PriceEntry
from services.common.events.keys import KeyEventV1


def _not_found(model: str) -> NotFound:
    return NotFound(
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found", param="model",
    )


def deprecation_headers(model: ModelEntry) -> dict[str, str]:
    """RFC 9745 ``Deprecation`` and RFC 8594 ``Sunset`` for a model that is going away: on every
    answer that names it (success, error, or the 410 once retired), so a client's logs show the
    warning whichever way its calls end."""
    headers: dict[str, str] = {}
    if model.deprecated_at is not None:
        headers["deprecation"] = f"@{int(model.deprecated_at.timestamp())}"
        if model.sunset_at is not None:
            headers["sunset"] = format_datetime(model.sunset_at, usegmt=True)
        if model.replacement:
            headers["x-tollgate-replacement"] = model.replacement
    return headers


class CatalogView:
    def __init__(self) -> None:
        self.models: dict[str, ModelEntry] = {}
        self.aliases: dict[str, str] = {}
        self.prices: dict[str, PriceEntry] = {}
        self._prices_of: dict[str, dict[str, PriceEntry]] = {}  # model id → its price versions by id

    def apply(self, key: str, event: CatalogEventV1 | None) -> None:
        kind, _, entity_id = key.partition(":")
        if event is None or event.deleted:
            if kind == "model":
                self.models.pop(entity_id, None)
            elif kind == "alias":
                self.aliases.pop(entity_id, None)
            elif kind == "price":
                self._drop_price(entity_id)
            return
        entity = event.entity
        if isinstance(entity, ModelEntry):
            self.models[entity.id] = entity
        elif isinstance(entity, AliasEntry):
            self.aliases[entity.id] = entity.target
        elif isinstance(entity, PriceEntry):
            self._drop_price(entity.id)
            self.prices[entity.id] = entity
            self._prices_of.setdefault(entity.model_id, {})[entity.id] = entity

    def _drop_price(self, price_id: str) -> None:
        old = self.prices.pop(price_id, None)
        if old is not None:
            self._prices_of.get(old.model_id, {}).pop(price_id, None)

    @staticmethod
    def allowed(key: KeyEventV1, *names: str) -> bool:
        patterns = key.limits.allowed_models
        return patterns is None or any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)

    def look_up(self, requested: str, key: KeyEventV1) -> ModelEntry:
        """The catalog model behind a requested id (alias followed), if this key may see it, retired
        or not."""
        model_id = self.aliases.get(requested, requested)
        model = self.models.get(model_id)
        if model is None or not self.allowed(key, requested, model_id):
            raise _not_found(requested)
        return model

    def resolve(self, requested: str, key: KeyEventV1, now: datetime | None = None) -> ModelEntry:
        """The catalog model behind a requested id (alias followed), if this key may use it.

        A model past its sunset date answers 410 naming its replacement, with the deprecation
        headers; the caller adds them to its answers for one that is deprecated but still served.
        """
        model = self.look_up(requested, key)
        if (retired := _retired_on(model, now or datetime.now(UTC))) is not None:
            hint = f" Use `{model.replacement}` instead." if model.replacement else ""
            gone = Gone(f"The model `{requested}` was retired on {retired}.{hint}", param="model")
            gone.headers.update(deprecation_headers(model))
            raise gone
        return model

    def current_price(self, model_id: str, now: datetime | None = None) -> PriceEntry | None:
        """The price version in force now: the latest one whose effective-from has passed."""
        at = now or datetime.now(UTC)
        versions = self._prices_of.get(model_id, {}).values()  # per request: never scan every price
        live = [p for p in versions if p.effective_from <= at]
        return max(live, key=lambda p: p.effective_from, default=None)

    def listed(
        self, key: KeyEventV1, now: datetime | None = None, *, retired: bool = False
    ) -> list[tuple[str, ModelEntry]]:
        """Every (public id, model) this key may call: models and their aliases, sorted. A model past
        its sunset is not listed (it answers 410 when asked for by name), as providers drop retired
        models from their lists: a client that picks from the list must not pick one that refuses.
        ``retired=True`` adds them, for a client that asks for them (Anthropic's ``lifecycle``)."""
        at = now or datetime.now(UTC)
        names = [(m.id, m) for m in self.models.values()]
        names += [(alias, self.models[t]) for alias, t in self.aliases.items() if t in self.models]
        return sorted(
            (n, m) for n, m in names if self.allowed(key, n, m.id) and (retired or _retired_on(m, at) is None)
        )


Lifecycle = Literal["active", "deprecated", "retired"]


def lifecycle(model: ModelEntry, now: datetime | None = None) -> Lifecycle:
    """Anthropic's stages: retired past the sunset (requests fail), deprecated once a deprecation is
    announced (still served), active otherwise."""
    if _retired_on(model, now or datetime.now(UTC)) is not None:
        return "retired"
    return "deprecated" if model.deprecated_at is not None else "active"


def _retired_on(model: ModelEntry, at: datetime) -> date | None:
    """The day a model past its sunset was retired (it answers 410 by name and is left off the
    list); None while it is served."""
    return model.sunset_at.date() if model.sunset_at is not None and model.sunset_at <= at else None
