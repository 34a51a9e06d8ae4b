"""``GET /v1/models`` and ``GET /v1/models/{id}``, in the format of the API that asks.

One URL serves both APIs, as it does at the providers: a request carrying ``anthropic-version`` (every
Anthropic SDK sends it) gets Anthropic's shape, paging and errors; any other gets OpenAI's. Both list
the same entries, each public id this key may call (a model and each of its aliases), because an id
in the list must be one the client can send.

- **OpenAI**: the whole list at once, with the platform's additions (context length, output limit,
  capabilities, the deprecation, exact per-token pricing).
- **Anthropic**: newest first (by when the catalog first held the model), paged with ``limit``
  (1–1000, default 20), ``after_id`` / ``before_id`` cursors, ``has_more``, ``first_id``, ``last_id``;
  filtered by ``lifecycle`` (``active`` and ``deprecated`` unless ``retired`` is asked for). A
  retired model keeps its entry by name (``lifecycle: "retired"``), as at Anthropic, where OpenAI's
  format answers 410.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, get_args

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from services.common.errors import InvalidRequest, TollgateError
from services.common.events.catalog import ModelEntry, PriceEntry
from services.common.events.keys import KeyEventV1
from services.common.numbers import whole_number
from services.edge.auth import presented_key
from services.edge.catalog_view import Lifecycle, deprecation_headers, lifecycle
from services.edge.dependencies import EdgeDeps
from services.edge.routes.fallbacks import flavor_of
from services.edge.routes.responses import error_response, json_response

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # Anthropic's value for a release date it does not know
LIFECYCLES: tuple[Lifecycle, ...] = get_args(Lifecycle)
DEFAULT_LIFECYCLES = frozenset({"active", "deprecated"})


async def list_models(request: Request) -> Response:
    deps: EdgeDeps = request.app.state.deps
    flavor = flavor_of(request)
    try:
        key = deps.key_index.authenticate(presented_key(request.headers))
        if flavor == "anthropic":
            return json_response(_anthropic_page(request.query_params, deps, key))
    except TollgateError as exc:
        return error_response(exc, flavor)
    data = [_openai_model(name, model, deps) for name, model in deps.catalog_view.listed(key)]
    return json_response({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    deps: EdgeDeps = request.app.state.deps
    flavor = flavor_of(request)
    name = request.path_params["model"]
    try:
        key = deps.key_index.authenticate(presented_key(request.headers))
        if flavor == "anthropic":
            model = deps.catalog_view.look_up(name, key)
            return json_response(_anthropic_model(name, model), headers=deprecation_headers(model))
        model = deps.catalog_view.resolve(name, key)
    except TollgateError as exc:
        return error_response(exc, flavor)
    return json_response(_openai_model(name, model, deps), headers=deprecation_headers(model))


def _per_token(micros_per_mtok: int) -> str:
    """Exact USD per token as a decimal string (OpenRouter's ``pricing`` convention)."""
    value = Decimal(micros_per_mtok) / Decimal(10**12)
    return format(value.normalize(), "f") if value else "0"


def _pricing(price: PriceEntry | None) -> dict[str, str] | None:
    if price is None:
        return None
    return {
        "prompt": _per_token(price.input_micros_per_mtok),
        "completion": _per_token(price.output_micros_per_mtok),
        "input_cache_read": _per_token(price.cached_input_micros_per_mtok),
        "input_cache_write": _per_token(price.cache_write_micros_per_mtok),
        "price_version": price.id,
    }


def _openai_model(name: str, model: ModelEntry, deps: EdgeDeps) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": int(model.created_at.timestamp()) if model.created_at else 0,
        "owned_by": "tollgate",
        "name": model.display_name,
        "context_length": model.context_length,
        "max_output_tokens": model.max_output_tokens,
        "capabilities": list(model.capabilities),
        "architecture": {  # OpenRouter's names: what a request may carry, what the model answers with
            "input_modalities": list(model.input_modalities),
            "output_modalities": list(model.output_modalities),
        },
        "pricing": _pricing(deps.catalog_view.current_price(model.id)),
    }
    if name != model.id:
        body["alias_of"] = model.id
    if model.deprecated_at is not None:
        body["deprecation"] = {
            "deprecated_at": model.deprecated_at.isoformat(),
            "sunset_at": model.sunset_at.isoformat() if model.sunset_at else None,
            "replacement": model.replacement,
        }
    return body


def _rfc3339(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _anthropic_model(name: str, model: ModelEntry) -> dict[str, Any]:
    return {
        "type": "model",
        "id": name,
        "display_name": model.display_name,
        "created_at": _rfc3339(model.created_at or EPOCH),
        "lifecycle": lifecycle(model),
        "deprecated_at": _rfc3339(model.deprecated_at),
        "retires_at": _rfc3339(model.sunset_at),
        "max_input_tokens": model.context_length,
        "max_tokens": model.max_output_tokens,
    }


def _lifecycles(query: QueryParams) -> frozenset[str]:
    values = [*query.getlist("lifecycle[]"), *query.getlist("lifecycle")]  # the SDKs send brackets
    asked = [stage for value in values for stage in value.split(",")]
    if not asked:
        return DEFAULT_LIFECYCLES
    unknown = sorted(set(asked) - set(LIFECYCLES))
    if unknown or len(asked) > len(LIFECYCLES):
        raise InvalidRequest(
            f"lifecycle: up to 3 of {', '.join(LIFECYCLES)}; got {', '.join(asked)[:200]}", param="lifecycle"
        )
    return frozenset(asked)


def _limit(query: QueryParams) -> int:
    raw = query.get("limit", "20")
    limit = whole_number(raw)
    if limit is None or not 1 <= limit <= 1000:
        raise InvalidRequest(f"limit: must be an integer from 1 to 1000, got {raw[:40]!r}", param="limit")
    return limit


def _anthropic_page(query: QueryParams, deps: EdgeDeps, key: KeyEventV1) -> dict[str, Any]:
    """One page of the key's models, newest first; the cursors are ids in that order."""
    limit, stages = _limit(query), _lifecycles(query)
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise InvalidRequest("Use either after_id or before_id, not both.", param="before_id")
    now = datetime.now(UTC)
    entries = [
        (name, model) for name, model in deps.catalog_view.listed(key, now, retired="retired" in stages)
        if lifecycle(model, now) in stages
    ]
    entries.sort(key=lambda e: (-(e[1].created_at or EPOCH).timestamp(), e[0]))
    ids = [name for name, _ in entries]
    for param, cursor in (("after_id", after), ("before_id", before)):
        if cursor is not None and cursor not in ids:
            raise InvalidRequest(f"{param}: `{cursor[:200]}` is not in this list of models.", param=param)
    if before is not None:
        end = ids.index(before)
        start = max(0, end - limit)
        page, has_more = entries[start:end], start > 0
    else:
        start = ids.index(after) + 1 if after is not None else 0
        page, has_more = entries[start:start + limit], start + limit < len(entries)
    return {
        "data": [_anthropic_model(name, model) for name, model in page],
        "has_more": has_more,
        "first_id": page[0][0] if page else None,
        "last_id": page[-1][0] if page else None,
    }
