"""What a management handler is given besides its service's ``Deps`` (the caller, the parsed request)
and what it returns. ``Deps`` stays in each service: it is the one thing that differs between them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Caller:
    """Who the edge says is calling: the operator (``account_id is None``) or a management key of one
    account; what such a key may see and do is each service's rule."""

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
        """How logs and audit trails name the caller: ids only, never a secret."""
        return "admin" if self.admin else f"{self.account_id}/{self.key_id or '?'}"


@dataclass(frozen=True)
class Call:
    """One validated request: the route's declared ``query`` and ``body`` models, already parsed."""

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
    """A status and a body: a response model, or a free-form JSON object (the OpenAPI document) — or,
    for a download (a CSV statement), the raw bytes with their ``media_type`` and a ``filename`` that
    the edge turns into ``content-disposition: attachment``."""

    status: int
    body: BaseModel | Mapping[str, Any] | bytes
    media_type: str = "application/json"
    filename: str = ""
