"""OpenAI-compatible endpoints: chat completions, completions and responses (the model list:
``routes/models.py``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.edge.admitted import AdmittedStream
from services.edge.convert import (
    OpenAIChatStream,
    OpenAICompletionStream,
    PublicRequest,
    build_chat_completion,
    build_completion,
    parse_chat_request,
    parse_completion_request,
)
from services.edge.convert_responses_api import (
    ResponsesChat,
    build_response,
    parse_responses_request,
    responses_param,
)
from services.edge.dependencies import EdgeDeps
from services.edge.routes.generation import Api, created_now, serve
from services.edge.streams_responses_api import ResponsesStream
from services.edge.wire.openai import ChatCompletionRequest, CompletionRequest
from services.edge.wire.responses_api import ResponsesRequest


def _include_usage(req: PublicRequest) -> bool:
    assert isinstance(req, ChatCompletionRequest | CompletionRequest)
    return bool(req.stream_options and req.stream_options.include_usage)


CHAT = Api(
    name="openai.chat_completions",
    flavor="openai",
    parse=parse_chat_request,
    stream=lambda rid, model, req: OpenAIChatStream(rid, model, include_usage=_include_usage(req)),
    build=lambda rid, model, whole, _: build_chat_completion(
        rid, model, created_now(), whole.text, whole.finish, whole.logprobs_json),
)
COMPLETIONS = Api(
    name="openai.completions",
    flavor="openai",
    parse=parse_completion_request,
    stream=lambda rid, model, req: OpenAICompletionStream(rid, model, include_usage=_include_usage(req)),
    build=lambda rid, model, whole, _: build_completion(
        rid, model, created_now(), whole.text, whole.finish, whole.logprobs_json),
)


def _responses_of(req: PublicRequest) -> ResponsesRequest:
    assert isinstance(req, ResponsesChat)
    return req.responses


RESPONSES = Api(
    name="openai.responses",
    flavor="openai",
    parse=parse_responses_request,
    stream=lambda rid, model, req: ResponsesStream(rid, model, _responses_of(req), created=created_now()),
    build=lambda rid, model, whole, req: build_response(
        rid, model, created_now(), whole.text, whole.finish, _responses_of(req), whole.logprobs_json),
    client_param=responses_param,
)


async def chat_completions(request: Request) -> Response | AdmittedStream:
    deps: EdgeDeps = request.app.state.deps
    return await serve(request, deps, CHAT)


async def completions(request: Request) -> Response | AdmittedStream:
    deps: EdgeDeps = request.app.state.deps
    return await serve(request, deps, COMPLETIONS)


async def responses(request: Request) -> Response | AdmittedStream:
    deps: EdgeDeps = request.app.state.deps
    return await serve(request, deps, RESPONSES)
