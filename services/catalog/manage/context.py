"""What the catalog's handlers are given besides the caller and the request (``services.common.manage``),
and the two questions every catalog write asks of a call: may this caller change the catalog (the
operator only; a management key of an account may read what is served, but not deployments, the review
queue or the audit trail), and how the audit trail names it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import asyncpg

from services.catalog.store import Actor
from services.catalog.sync.runner import SyncConfig
from services.catalog.sync.sources import SyncSource
from services.common.errors import PermissionDenied
from services.common.manage.context import Call
from services.common.outbox import Flusher


@dataclass(frozen=True)
class Deps:
    pool: asyncpg.Pool
    outbox: Flusher
    max_price_micros: int
    sync_config: SyncConfig
    sync_sources: Mapping[str, SyncSource] = field(default_factory=dict)
    credential: Callable[[str | None], str | None] = field(default=lambda _name: None, repr=False)
    flush_timeout: float = 2.0

    async def published(self) -> None:
        """Wait (bounded) until what this request committed is on catalog.v1; if Kafka is down the
        outbox publishes it later, so the answer does not wait longer."""
        await self.outbox.flush(self.flush_timeout)


def actor(call: Call) -> Actor:
    """The audit trail's record of who made a change, and in which request."""
    return Actor(call.caller.audit, call.request_id)


def require_admin(call: Call) -> None:
    if not call.caller.admin:
        raise PermissionDenied("Only the platform operator can do this in the catalog.", code="admin_only")
