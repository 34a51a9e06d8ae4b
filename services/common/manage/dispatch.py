"""One management request in, one HTTP answer out: route, validate, run, render — or the error.

Every failure becomes the OpenAI error shape with its status; nothing escapes as a gRPC error, so the
edge relays the service's answer as it is. Handlers run their changes in one transaction, so an error
raised anywhere leaves the database as it was. Logs carry ids, the route and the outcome — never a
body or a secret (a PostgreSQL error's text can quote row values, so only its class is logged).

A service builds one ``Dispatcher`` from its route table, its own latency histogram (metric names stay
per service) and the message its 503 gives when its database is unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic

import asyncpg
import orjson
import structlog
from prometheus_client import Histogram
from pydantic import BaseModel

from services.common.errors import Conflict, DependencyUnavailable, TollgateError
from services.common.manage.context import Call, Caller, Reply
from services.common.manage.routing import DepsT, Route, match
from services.common.manage.validation import parse_body, parse_query

log = structlog.get_logger(__name__)
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)
_INTERNAL = "The server had an error while processing your request."


def as_json(body: BaseModel | Mapping[str, Any]) -> Any:
    """By alias, as the OpenAPI document describes the answer (a field ``start`` sent as ``"from"``)."""
    return body.model_dump(mode="json", by_alias=True) if isinstance(body, BaseModel) else body


@dataclass(frozen=True)
class Answer:
    """What goes back to the edge: a status and a body, JSON unless ``media_type`` says otherwise; a
    ``filename`` marks a download."""

    status: int
    body: bytes
    media_type: str = "application/json"
    filename: str = ""


def _error(exc: TollgateError) -> Answer:
    return Answer(exc.http_status, orjson.dumps(exc.to_openai()))


def _render(reply: Reply) -> Answer:
    if isinstance(reply.body, bytes):
        return Answer(reply.status, reply.body, reply.media_type, reply.filename)
    return Answer(reply.status, orjson.dumps(as_json(reply.body)), reply.media_type, reply.filename)


@dataclass(frozen=True)
class Dispatcher(Generic[DepsT]):
    """``dispatch(deps, caller, method, path, query, body, request_id) -> (status, body bytes)``;
    ``dispatch.answer(...)`` also says the body's media type and download filename."""

    routes: Sequence[Route[DepsT]]
    latency: Histogram  # labels: route, status
    unavailable: str  # the 503's message, naming the service's database

    async def _run(self, deps: DepsT, caller: Caller, route: Route[DepsT], params: dict[str, str],
                   query: str, body: bytes, request_id: str) -> Answer:
        call = Call(
            caller=caller, params=params, query=parse_query(route.query, query),
            body=parse_body(route.body, body) if route.body is not None else None, request_id=request_id,
        )
        return _render(await route.handler(deps, call))

    async def __call__(
        self, deps: DepsT, caller: Caller | TollgateError, method: str, path: str, query: str, body: bytes,
        request_id: str = "",
    ) -> tuple[int, bytes]:
        """(status, body) of ``answer``: what most callers (and tests) need."""
        answer = await self.answer(deps, caller, method, path, query, body, request_id)
        return answer.status, answer.body

    async def answer(
        self, deps: DepsT, caller: Caller | TollgateError, method: str, path: str, query: str, body: bytes,
        request_id: str = "",
    ) -> Answer:
        """``caller`` is the authenticated caller, or the error that authenticating it produced."""
        started = time.perf_counter()
        label = "unmatched"
        try:
            route, params = match(self.routes, method.upper(), path)
            label = f"{route.method} {route.path}"
            if isinstance(caller, TollgateError):
                if not route.public:
                    raise caller
                caller = Caller.nobody()
            answer = await self._run(deps, caller, route, dict(params), query, body, request_id)
        except TollgateError as exc:
            answer = _error(exc)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.TransactionRollbackError) as exc:
            # a race the checks could not see (a duplicate, a deadlock between two changes): retryable
            log.warning("manage_conflict", route=label, error_type=type(exc).__name__, request_id=request_id)
            answer = _error(Conflict("The request conflicts with a concurrent change; retry it."))
        except _UNAVAILABLE as exc:
            log.warning("manage_db_unavailable", route=label, error_type=type(exc).__name__,
                        request_id=request_id)
            answer = _error(DependencyUnavailable(self.unavailable))
        except asyncpg.PostgresError as exc:
            log.error("manage_db_error", route=label, error_type=type(exc).__name__, request_id=request_id)
            answer = _error(TollgateError(_INTERNAL))
        except Exception:
            log.exception("manage_failed", route=label, request_id=request_id)
            answer = _error(TollgateError(_INTERNAL))
        self.latency.labels(label, str(answer.status)).observe(time.perf_counter() - started)
        return answer
