"""Every price version catalog.v1 has published, by version id: what metering and billing price usage at.

Fed by a ``CompactedSnapshot`` of catalog.v1 (``on_change``). A price version is never forgotten,
not even on a tombstone or a ``deleted`` flag: usage.v1 is replayed from offset 0 (30 days) and must
price the same every time, so an event names the version it was admitted under and that version has to
stay resolvable. (A version deleted before a restart is gone for good after it; docs/metering.md asks
the catalog never to delete a version younger than the usage retention.) A version's amounts are
expected never to change; if they do, the latest wins for events processed from then on, and a warning
says so.

A dict (version id → entry), so that the consumer's lookup per event is a plain dict lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from services.common.events.catalog import CatalogEventV1, PriceEntry

log = structlog.get_logger(__name__)


class PriceBook(dict[str, PriceEntry]):
    def apply(self, key: str, event: CatalogEventV1 | None) -> None:
        """``CompactedSnapshot.on_change``: keep every price entity seen; ignore other kinds."""
        if not key.startswith("price:"):
            return
        if event is None or event.deleted:
            log.info("price_version_deleted_kept", price_version=key.partition(":")[2])
            return
        entity = event.entity
        if not isinstance(entity, PriceEntry):
            return
        known = self.get(entity.id)
        if known is not None and known.model_dump(exclude={"effective_from"}) != entity.model_dump(
            exclude={"effective_from"}
        ):
            log.warning("price_version_amounts_changed", price_version=entity.id, model_id=entity.model_id)
        self[entity.id] = entity


class PriceNotYetKnown(Exception):
    """A batch names a price version not in the book yet: fail it, so the consumer rewinds and retries."""


class PriceWait:
    """How long a usage consumer waits for a price version it has not seen before giving up on it.

    The edge may apply a new catalog.v1 price a moment before this consumer does (two consumers of one
    topic, no order between them), so a miss is first retried; only after ``wait_seconds`` since the
    first miss is the event treated as bad (dead-lettered). Metering and billing's charges share it.
    """

    def __init__(self, wait_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = wait_seconds
        self._clock = clock
        self._first_missed: dict[str, float] = {}

    def give_up_on(self, version: str) -> bool:
        now = self._clock()
        first = self._first_missed.setdefault(version, now)
        return now - first >= self.seconds
