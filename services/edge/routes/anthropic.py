"""Anthropic Messages API: ``POST /v1/messages`` (``x-api-key`` or Bearer), Anthropic error format."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.edge.admitted import AdmittedStream
from services.edge.convert import AnthropicMessageStream, build_message, parse_messages_request
from services.edge.cors import ANTHROPIC_BROWSER_HEADER
from services.edge.dependencies import EdgeDeps
from services.edge.routes.generation import Api, serve

MESSAGES = Api(
    name="anthropic.messages",
    flavor="anthropic",
    parse=parse_messages_request,
    stream=lambda rid, model, _req: AnthropicMessageStream(rid, model),
    build=build_message,
    browser_opt_in=ANTHROPIC_BROWSER_HEADER,
)


async def messages(request: Request) -> Response | AdmittedStream:
    deps: EdgeDeps = request.app.state.deps
    return await serve(request, deps, MESSAGES)
