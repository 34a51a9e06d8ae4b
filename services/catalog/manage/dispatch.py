"""One management request in, one HTTP answer out: route, validate, run, render — or the error.

Every failure becomes the OpenAI error shape with its status; nothing escapes as a gRPC error, so the
edge relays the catalog's answer as it is. Handlers run their changes in one transaction, so an error
raised anywhere leaves the database as it was. Logs carry ids, the route and the outcome — never a
body (a PostgreSQL error's text can quote row values, so only its class is logged).
"""

from __future__ import annotations

import time

import asyncpg
import orjson
import structlog
from prometheus_client import Histogram

from services.catalog.manage.context import Call, Caller, Deps
from services.catalog.manage.routes import Route, as_json, match
from services.catalog.manage.validation import parse_body, parse_query
from services.common.errors import Conflict, DependencyUnavailable, TollgateError

log = structlog.get_logger(__name__)
LATENCY = Histogram(
    "tollgate_catalog_manage_seconds", "Management API calls handled by catalog", ["route", "status"]
)
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


def _error(exc: TollgateError) -> tuple[int, bytes]:
    return exc.http_status, orjson.dumps(exc.to_openai())


async def _run(deps: Deps, caller: Caller, route: Route, params: dict[str, str], query: str, body: bytes,
               request_id: str) -> tuple[int, bytes]:
    call = Call(
        caller=caller, params=params, query=parse_query(route.query, query),
        body=parse_body(route.body, body) if route.body is not None else None, request_id=request_id,
    )
    reply = await route.handler(deps, call)
    return reply.status, orjson.dumps(as_json(reply.body))


async def dispatch(
    deps: Deps, caller: Caller | TollgateError, method: str, path: str, query: str, body: bytes,
    request_id: str = "",
) -> tuple[int, bytes]:
    """``caller`` is the authenticated caller, or the error that authenticating it produced."""
    started = time.perf_counter()
    label = "unmatched"
    try:
        route, params = match(method.upper(), path)
        label = f"{route.method} {route.path}"
        if isinstance(caller, TollgateError):
            if not route.public:
                raise caller
            caller = Caller.nobody()
        status, answer = await _run(deps, caller, route, dict(params), query, body, request_id)
    except TollgateError as exc:
        status, answer = _error(exc)
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.TransactionRollbackError) as exc:
        # a race the checks could not see (a duplicate, a deadlock between two changes): retryable
        log.warning("manage_conflict", route=label, error_type=type(exc).__name__, request_id=request_id)
        status, answer = _error(Conflict("The request conflicts with a concurrent change; retry it."))
    except _UNAVAILABLE as exc:
        log.warning("manage_db_unavailable", route=label, error_type=type(exc).__name__,
                    request_id=request_id)
        status, answer = _error(DependencyUnavailable("The catalog database is unavailable; retry shortly."))
    except asyncpg.PostgresError as exc:
        log.error("manage_db_error", route=label, error_type=type(exc).__name__, request_id=request_id)
        status, answer = _error(TollgateError("The server had an error while processing your request."))
    except Exception:
        log.exception("manage_failed", route=label, request_id=request_id)
        status, answer = _error(TollgateError("The server had an error while processing your request."))
    LATENCY.labels(label, str(status)).observe(time.perf_counter() - started)
    return status, answer
