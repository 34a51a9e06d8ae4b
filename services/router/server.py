"""The router's gRPC server: ``RouterService.Generate`` and the standard gRPC health service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import structlog
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.errors import InvalidRequest, TollgateError
from services.router.backends import ChatTurn, GenerationRequest, Outcome, Sampling
from services.router.backends.triton import TritonBackend
from tollgate.router.v1 import router_pb2, router_pb2_grpc

log = structlog.get_logger(__name__)


def _sampling(params: router_pb2.SamplingParams) -> Sampling:
    if params.max_tokens <= 0:
        raise InvalidRequest("max_tokens must be a positive integer", param="max_tokens")
    return Sampling(
        max_tokens=params.max_tokens,
        temperature=params.temperature if params.HasField("temperature") else None,
        top_p=params.top_p if params.HasField("top_p") else None,
        top_k=params.top_k if params.HasField("top_k") else None,
        seed=params.seed if params.HasField("seed") else None,
        stop=tuple(params.stop),
    )


def _generation(request: router_pb2.GenerateRequest) -> GenerationRequest:
    if request.provider_options_json:
        options = json.loads(request.provider_options_json)
        if not isinstance(options, dict):
            raise InvalidRequest("provider_options_json must be a JSON object")
    else:
        options = {}
    chat = request.WhichOneof("input") == "chat"
    return GenerationRequest(
        request_id=request.request_id,
        upstream_model=request.model,
        sampling=_sampling(request.sampling),
        messages=tuple(
            ChatTurn(m.role, m.content, m.name, m.tool_call_id) for m in request.chat.messages
        ) if chat else None,
        prompt=None if chat else request.prompt,
        provider_options=options,
    )


class RouterService(router_pb2_grpc.RouterServiceServicer):
    def __init__(self, triton: TritonBackend, model_id: str) -> None:
        self._triton = triton
        self._model_id = model_id

    async def Generate(  # noqa: N802 - gRPC method name
        self, request: router_pb2.GenerateRequest, context: grpc.aio.ServicerContext[
            router_pb2.GenerateRequest, router_pb2.GenerateResponse]
    ) -> AsyncIterator[router_pb2.GenerateResponse]:
        structlog.contextvars.bind_contextvars(request_id=request.request_id)
        try:
            if request.model != self._model_id:
                raise InvalidRequest(f"model {request.model!r} is not served here", param="model")
            generation = _generation(request)
        except TollgateError as exc:
            await context.abort(exc.grpc_code, exc.message)
        outcome = Outcome()
        sent_any = False
        try:
            async for text in self._triton.generate(generation, outcome):
                sent_any = True
                yield router_pb2.GenerateResponse(delta=router_pb2.Delta(text=text))
        except TollgateError as exc:
            if not sent_any:
                await context.abort(exc.grpc_code, exc.message)
            outcome.finish_reason = "error"
            yield _finish(outcome, self._model_id, exc)
            return
        yield _finish(outcome, self._model_id, None)


def _finish(outcome: Outcome, model: str, error: TollgateError | None) -> router_pb2.GenerateResponse:
    return router_pb2.GenerateResponse(
        finish=router_pb2.Finish(
            finish_reason=outcome.finish_reason,
            usage=router_pb2.Usage(
                input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens
            ),
            deployment_id="triton",
            provider="triton",
            model_served=model,
            attempts=1,
            error_code=error.code or "" if error else "",
            error_message=error.message if error else "",
        )
    )


def build_server(service: RouterService, health_servicer: health_aio.HealthServicer) -> grpc.aio.Server:
    server = grpc.aio.server()
    router_pb2_grpc.add_RouterServiceServicer_to_server(service, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
