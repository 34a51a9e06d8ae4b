"""A management route table and how a request finds its row in it.

A service's table is the one place its API is declared: ``dispatch`` serves it and ``openapi`` renders
it, so the document cannot drift from what is served. Path templates name a parameter ``{name}`` (one
segment) or ``{name*}`` (one or more segments, for ids that contain ``/``, as vLLM and OpenRouter name
models); when several templates fit a path, the one with the most fixed segments wins
(``.../models/a/b/prices`` is the prices of ``a/b``, not the model ``a/b/prices``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from services.common.errors import MethodNotAllowed, NotFound
from services.common.manage.context import Call, Reply

DepsT = TypeVar("DepsT")
OPENAPI_PATH = "/openapi.json"


class NoQuery(BaseModel):
    """The query of a route that takes none: any parameter is refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Route(Generic[DepsT]):
    """One operation: generic in the service's ``Deps``, which its handler is given."""

    method: str
    path: str  # template: "{name}" is one path segment, "{name*}" one or more
    handler: Callable[[DepsT, Call], Awaitable[Reply]]
    summary: str
    response: type[BaseModel] | None  # None: a free-form JSON object (the OpenAPI document)
    body: type[BaseModel] | None = None
    query: type[BaseModel] = NoQuery
    status: int = 200
    also: tuple[int, ...] = ()  # other success statuses with the same answer (PUT: 201 created)
    errors: tuple[int, ...] = (400, 401, 404)
    tag: str = ""
    public: bool = False  # answered without a caller (the edge sends none)
    description: str = ""  # a longer text for the OpenAPI operation, when the summary is not enough


def _matches(template: str, path: str) -> tuple[int, dict[str, str]] | None:
    """(number of fixed segments, parameters) when ``path`` fits ``template``."""
    want, got = template.split("/"), path.split("/")
    greedy = next((i for i, w in enumerate(want) if w.endswith("*}")), None)
    if greedy is None:
        if len(want) != len(got):
            return None
        pairs = list(zip(want, got, strict=True))
    else:
        tail = len(want) - greedy - 1
        if len(got) < len(want):
            return None
        middle = got[greedy:len(got) - tail]
        if not all(middle):
            return None
        pairs = [*zip(want[:greedy], got[:greedy], strict=True), (want[greedy], "/".join(middle)),
                 *zip(want[greedy + 1:], got[len(got) - tail:], strict=True)]
    params: dict[str, str] = {}
    fixed = 0
    for w, g in pairs:
        if w.startswith("{") and w.endswith("}"):
            if not g:
                return None
            params[w[1:-1].rstrip("*")] = g
        elif w != g:
            return None
        else:
            fixed += 1
    return fixed, params


def match(routes: Sequence[Route[DepsT]], method: str, path: str) -> tuple[Route[DepsT], Mapping[str, str]]:
    """The route for this request, with its path parameters; 404 / 405 otherwise."""
    found = [(m[0], route, m[1]) for route in routes if (m := _matches(route.path, path)) is not None]
    if not found:
        raise NotFound(f"Unknown request URL: {method} {path[:200]}.", code="unknown_url")
    best = max(fixed for fixed, _, _ in found)
    candidates = [(route, params) for fixed, route, params in found if fixed == best]
    for route, params in candidates:
        if route.method == method:
            return route, params
    allowed = ", ".join(dict.fromkeys(route.method for route, _ in candidates))
    raise MethodNotAllowed(f"{method} is not allowed on {path[:200]}; allowed: {allowed}.")
