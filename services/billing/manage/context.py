"""What a handler is given (the caller, the parsed request, the service's dependencies) and returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import asyncpg
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Caller:
    """Who the edge says is calling: the operator (``account_id is None``) or a management key of one
    account, which may act on that account and its descendants only."""

    account_id: str | None
    key_id: str = ""

    @classmethod
    def nobody(cls) -> Caller:
        """For public routes called without a caller: not the admin, and an account id that matches no
        account, so it sees nothing even if a public handler ever looked."""
        return cls(account_id="")

    @property
    def admin(self) -> bool:
        return self.account_id is None

    @property
    def audit(self) -> str:
        """How logs name the caller: never a secret, only ids."""
        return "admin" if self.admin else f"{self.account_id}/{self.key_id or '?'}"


class Flusher(Protocol):
    async def flush(self, timeout: float) -> bool: ...


@dataclass(frozen=True)
class Deps:
    pool: asyncpg.Pool
    outbox: Flusher
    key_hash_secret: str = field(repr=False)
    flush_timeout: float = 2.0


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


@dataclass(frozen=True)
class Reply:
    status: int
    body: BaseModel | Mapping[str, Any]
