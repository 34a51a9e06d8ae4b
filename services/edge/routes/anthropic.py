"""Anthropic Messages API: ``POST /v1/messages`` (``x-api-key`` or Bearer) and
``POST /v1/messages/count_tokens``, Anthropic error format."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.common.errors import TollgateError
from services.common.events.catalog import ModelEntry
from services.edge.admitted import AdmittedStream
from services.edge.auth import presented_key
from services.edge.capabilities import check_generates
from services.edge.catalog_view import deprecation_headers
from services.edge.content import check_image_input
from services.edge.convert import (
    AnthropicMessageStream,
    PublicRequest,
    build_message,
    parse_messages_request,
    to_generate_request,
)
from services.edge.convert_anthropic import asks_for_thinking, messages_param, parse_count_tokens_request
from services.edge.cors import ANTHROPIC_BROWSER_HEADER, check_browser_opt_in
from services.edge.dependencies import EdgeDeps
from services.edge.routes.generation import Api, serve
from services.edge.routes.responses import error_response, json_response, read_body


def _stream(request_id: str, model: str, req: PublicRequest) -> AnthropicMessageStream:
    return AnthropicMessageStream(request_id, model, thinking=asks_for_thinking(req))


MESSAGES = Api(
    name="anthropic.messages",
    flavor="anthropic",
    parse=parse_messages_request,
    stream=_stream,
    build=lambda rid, model, whole, _req: build_message(rid, model, whole.text, whole.finish),
    browser_opt_in=ANTHROPIC_BROWSER_HEADER,
    client_param=messages_param,
)
COUNT_TIMEOUT_SECONDS = 30.0  # a count is one small request to the provider, never a generation


async def messages(request: Request) -> Response | AdmittedStream:
    deps: EdgeDeps = request.app.state.deps
    return await serve(request, deps, MESSAGES)


async def count_tokens(request: Request) -> Response:
    """``{"input_tokens": n}`` for a Messages request's prompt, counted by the model's provider.

    The key, the body and the model's access are checked as for a generation; nothing is admitted,
    reserved or metered: counting generates nothing and is free, as at Anthropic. Like Anthropic, it
    has a rate limit of its own, apart from the plan's (``CountLimit``).
    """
    deps: EdgeDeps = request.app.state.deps
    model: ModelEntry | None = None
    try:
        check_browser_opt_in(request.headers)
        key = deps.key_index.authenticate(presented_key(request.headers))
        parsed = parse_count_tokens_request(await read_body(request, deps.settings.max_body_bytes))
        model = deps.catalog_view.resolve(parsed.model, key)
        check_generates(model, parsed.model)
        generate = to_generate_request(
            parsed, request.scope["state"]["request_id"], key.account_id, model.id, default_max_tokens=1
        )
        check_image_input(generate, model)
        await deps.count_limit.take(key)
        counted = await deps.router.count_tokens(generate, COUNT_TIMEOUT_SECONDS)
    except TollgateError as exc:
        return error_response(
            MESSAGES.for_client(exc), "anthropic", deprecation_headers(model) if model is not None else None
        )
    return json_response({"input_tokens": counted.input_tokens}, headers=deprecation_headers(model))
