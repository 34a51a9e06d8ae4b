"""What a handler is given (the caller, the parsed request, the service's dependencies) and returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import asyncpg
from pydantic import BaseModel

from services.catalog.store import Actor
from services.catalog.sync.runner import SyncConfig
from services.catalog.sync.sources import SyncSource
from services.common.errors import PermissionDenied

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Caller:
    """Who the edge says is calling: the operator (``account_id is None``), who may change the catalog,
    or a management key of one account, which may read what is served (not deployments, not the review
    queue, not the audit trail)."""

    account_id: str | None
    key_id: str = ""

    @classmethod
    def nobody(cls) -> Caller:
        """For public routes called without a caller: not the admin."""
        return cls(account_id="")

    @property
    def admin(self) -> bool:
        return self.account_id is None

    @property
    def audit(self) -> str:
        """How the audit trail and logs name the caller: ids only, never a secret."""
        return "admin" if self.admin else f"{self.account_id}/{self.key_id or '?'}"


class Flusher(Protocol):
    async def flush(self, timeout: float) -> bool: ...


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


@dataclass(frozen=True)
class Call:
    caller: Caller
    params: Mapping[str, str]
    query: BaseModel
    body: BaseModel | None
    request_id: str = ""

    def body_as(self, model: type[M]) -> M:
        assert isinstance(self.body, model), f"route declares {type(self.body)}, handler wants {model}"
        return self.body

    def query_as(self, model: type[M]) -> M:
        assert isinstance(self.query, model), f"route declares {type(self.query)}, handler wants {model}"
        return self.query

    @property
    def actor(self) -> Actor:
        return Actor(self.caller.audit, self.request_id)

    def require_admin(self) -> None:
        if not self.caller.admin:
            raise PermissionDenied("Only the platform operator can do this in the catalog.",
                                   code="admin_only")


@dataclass(frozen=True)
class Reply:
    status: int
    body: BaseModel | Mapping[str, Any]
