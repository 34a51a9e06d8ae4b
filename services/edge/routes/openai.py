"""OpenAI-compatible endpoints: chat completions, completions, models."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.common.errors import TollgateError
from services.common.events.catalog import ModelEntry, PriceEntry
from services.edge.admitted import AdmittedStream
from services.edge.auth import presented_key
from services.edge.catalog_view import deprecation_headers
from services.edge.convert import (
    OpenAIChatStream,
    OpenAICompletionStream,
    PublicRequest,
    build_chat_completion,
    build_completion,
    parse_chat_request,
    parse_completion_request,
)
from services.edge.dependencies import EdgeDeps
from services.edge.routes.generation import Api, created_now, serve
from services.edge.routes.responses import error_response, json_response
from services.edge.wire.openai import ChatCompletionRequest, CompletionRequest


def _include_usage(req: PublicRequest) -> bool:
    assert isinstance(req, ChatCompletionRequest | CompletionRequest)
    return bool(req.stream_options and req.stream_options.include_usage)


CHAT = Api(
    name="openai.chat_completions",
    flavor="openai",
    parse=parse_chat_request,
    stream=lambda rid, model, req: OpenAIChatStream(rid, model, include_usage=_include_usage(req)),
    build=lambda rid, model, text, finish: build_chat_completion(rid, model, created_now(), text, finish),
)
COMPLETIONS = Api(
    name="openai.completions",
    flavor="openai",
    parse=parse_completion_request,
    stream=lambda rid, model, req: OpenAICompletionStream(rid, model, include_usage=_include_usage(req)),
    build=lambda rid, model, text, finish: build_completion(rid, model, created_now(), text, finish),
)


async def chat_completions(request: Request) -> Response | AdmittedStream:
    deps: EdgeDeps = request.app.state.deps
    return await serve(request, deps, CHAT)


async def completions(request: Request) -> Response | AdmittedStream:
    deps: EdgeDeps = request.app.state.deps
    return await serve(request, deps, COMPLETIONS)


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


def _model_object(name: str, model: ModelEntry, deps: EdgeDeps) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "tollgate",
        "name": model.display_name,
        "context_length": model.context_length,
        "max_output_tokens": model.max_output_tokens,
        "capabilities": list(model.capabilities),
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


async def list_models(request: Request) -> Response:
    deps: EdgeDeps = request.app.state.deps
    try:
        key = deps.key_index.authenticate(presented_key(request.headers))
    except TollgateError as exc:
        return error_response(exc, "openai")
    data = [_model_object(name, model, deps) for name, model in deps.catalog_view.listed(key)]
    return json_response({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    deps: EdgeDeps = request.app.state.deps
    name = request.path_params["model"]
    try:
        key = deps.key_index.authenticate(presented_key(request.headers))
        model = deps.catalog_view.resolve(name, key)
    except TollgateError as exc:
        return error_response(exc, "openai")
    return json_response(_model_object(name, model, deps), headers=deprecation_headers(model))
