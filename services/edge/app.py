"""The edge's one route table. Handlers are thin; every route of the public API is listed here."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware

from services.common.ops import ops_routes
from services.edge.dependencies import EdgeDeps
from services.edge.request_id import RequestIdMiddleware


def build_app(deps: EdgeDeps) -> Starlette:
    routes = [*ops_routes("edge", deps.readiness())]
    return Starlette(routes=routes, middleware=[Middleware(RequestIdMiddleware)])
