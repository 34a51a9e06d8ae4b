"""The router's gRPC server: ``RouterService.Generate``, ``Complete`` and ``Session`` (both of them,
many calls over one stream: services/router/session.py), ``CountTokens`` and ``Embed`` (one unary
call each: rare next to generations, and one answer each), and the gRPC health service.

Generate resolves the model's deployment chain from the catalog snapshot, runs it through
fallback (retries only before the first byte), and streams deltas followed by exactly one Finish:
one Delta per batch of pieces the backend read together. Complete is the same for clients that did
not ask for a stream, answered in one message: a unary call costs the two processes about half the
CPU of a two-message stream (docs/benchmarks.md).
An error before the first delta is a gRPC error (so the edge can answer with a proper status); an
error after it is a Finish with ``finish_reason="error"`` (the edge ends the stream with an error
event). The error's code travels in the ``tollgate-error-code`` trailing metadata.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import replace
from typing import Any, NoReturn, TypeVar

import grpc
import orjson
import structlog
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import Counter

from services.common.errors import InvalidRequest, NotFound, TollgateError, UnsupportedByBackend
from services.common.frame_batcher import CHANNEL_OPTIONS
from services.router.backend_pool import BackendPool
from services.router.backend_requests import embedding_request, generation_request
from services.router.backends import (
    COUNT_UNSUPPORTED,
    GenerationRequest,
    Outcome,
    ThinkingDelta,
    ToolCallDelta,
)
from services.router.breaker import CircuitBreaker
from services.router.fallback import (
    Deployment,
    Served,
    embed_with_fallback,
    generate_with_fallback,
    retryable,
)
from services.router.routing import RoutingTable
from services.router.session import CallSession
from tollgate.router.v1 import router_pb2, router_pb2_grpc

log = structlog.get_logger(__name__)
USAGE_MISSING = Counter(
    "tollgate_router_usage_missing_total",
    "answers that ended cleanly without the backend reporting token usage (billed as zero tokens)",
    ["deployment"],
)
INPUT_UNKNOWN = Counter(
    "tollgate_router_cancelled_input_unknown_total",
    "calls cancelled by the caller while a deployment worked on them, before it reported the prompt's "
    "tokens (OpenAI-compatible servers without continuous_usage say them only at the end, Triton with "
    "its first response), whose prompt the deployment could not count either: their input is billed "
    "as zero",
    ["deployment"],
)
PROMPT_COUNTED = Counter(
    "tollgate_router_cancelled_input_counted_total",
    "calls cancelled before their deployment said the prompt's tokens, whose prompt the deployment then "
    "counted (count_tokens) so that it is billed",
    ["deployment"],
)
# Counting a cut call's prompt must end before the edge stops waiting for the call's account
# (services/edge/session_call.py, ACCOUNT_WAIT_SECONDS = 2).
CANCELLED_COUNT_SECONDS = 1.5
Context = grpc.aio.ServicerContext[router_pb2.GenerateRequest, router_pb2.GenerateResponse]
CompleteContext = grpc.aio.ServicerContext[router_pb2.GenerateRequest, router_pb2.CompleteResponse]
SessionContext = grpc.aio.ServicerContext[router_pb2.EdgeFrames, router_pb2.RouterFrames]
CountContext = grpc.aio.ServicerContext[router_pb2.GenerateRequest, router_pb2.CountTokensResponse]
EmbedContext = grpc.aio.ServicerContext[router_pb2.EmbedRequest, router_pb2.EmbedResponse]
R = TypeVar("R")


async def _abort(
    context: Context | CompleteContext | CountContext | EmbedContext, exc: TollgateError
) -> NoReturn:
    """End the call with ``exc`` as a gRPC error. Its code and, for rate limits and overloads, the
    provider's Retry-After travel as trailers, so the edge can answer with the same error, status
    and header."""
    trailers = [("tollgate-error-code", exc.code or "")]
    if exc.param and exc.param.isascii() and exc.param.isprintable():  # metadata values are ASCII
        trailers.append(("tollgate-error-param", exc.param[:200]))
    if exc.retry_after is not None:
        trailers.append(("tollgate-retry-after", f"{exc.retry_after:g}"))
    context.set_trailing_metadata(tuple(trailers))
    await context.abort(exc.grpc_code, exc.message)
    raise AssertionError("context.abort raises")  # for the type checker: abort never returns


async def _reply_or_abort(
    reply: Awaitable[R], context: CompleteContext | CountContext | EmbedContext
) -> R:
    """A unary call's reply, or its error as the call's gRPC status."""
    try:
        return await reply
    except TollgateError as exc:
        await _abort(context, exc)


async def _count_cut_prompt(served: Served) -> int:
    """The prompt's tokens of a call cancelled before its backend said them, as its deployment counts
    them; 0 when it cannot (no way to count, a failure, no answer in time)."""
    if served.count_prompt is not None:
        try:
            async with asyncio.timeout(CANCELLED_COUNT_SECONDS):
                tokens = await served.count_prompt()
        except UnsupportedByBackend:
            pass  # this deployment has no way to count: the metric below says how often that costs
        except (TollgateError, TimeoutError) as exc:
            log.warning("cancelled_prompt_count_failed", deployment=served.deployment_id,
                        error=getattr(exc, "code", None) or type(exc).__name__)
        else:
            PROMPT_COUNTED.labels(served.deployment_id).inc()
            return tokens
    if served.deployment_id:
        INPUT_UNKNOWN.labels(served.deployment_id).inc()
    return 0


class RouterService(router_pb2_grpc.RouterServiceServicer):
    def __init__(self, table: RoutingTable, pool: BackendPool) -> None:
        self._table = table
        self._pool = pool
        self._breakers: dict[str, CircuitBreaker] = {}
        self._in_flight: collections.Counter[str] = collections.Counter()  # attempts running, per deployment
        self._sessions: set[CallSession] = set()

    def _chain(self, model: str, affinity: str) -> list[Deployment]:
        entries = self._table.chain(model, affinity, self._in_flight)
        if not entries:
            raise NotFound(f"The model `{model}` does not exist or is not served", code="model_not_found")
        return [Deployment(e.id, e.backend, e.upstream_model, self._pool.get(e)) for e in entries]

    def _prepare(self, request: router_pb2.GenerateRequest) -> tuple[list[Deployment], GenerationRequest]:
        """The deployment chain and the backend request, or the request's error."""
        structlog.contextvars.bind_contextvars(request_id=request.request_id)
        try:
            model = self._table.models.get(self._table.resolve(request.model))
            generation = generation_request(request, model.chat_template if model else None)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        # a prompt cache key groups requests that share a prefix; else one end user's requests do
        return self._chain(request.model, request.prompt_cache_key or request.end_user), generation

    def _run(
        self, chain: list[Deployment], generation: GenerationRequest, served: Served
    ) -> AsyncGenerator[list[str], None]:
        return generate_with_fallback(chain, generation, self._breakers, served, self._in_flight)

    async def events(
        self, request: router_pb2.GenerateRequest, served: Served
    ) -> AsyncIterator[router_pb2.GenerateResponse]:
        """Generate's messages. A failure before the first delta raises; after it, the last message is
        a Finish saying error. ``served`` is filled as the call goes (what a cancel reports)."""
        chain, generation = self._prepare(request)
        sent_any = False
        try:
            async for batch in self._run(chain, generation, served):
                o = served.outcome
                calls = o.take_tool_deltas() if o.tool_deltas else []
                thinking = o.take_thinking_deltas() if o.thinking_deltas else []
                logprobs = o.take_logprobs() if o.logprobs else []
                # a fragment or a piece of thinking is output too (cut-stream billing)
                served.pieces += len(batch) + len(calls) + len(thinking)
                if not request.accepts_tool_call_deltas:
                    calls = []  # the caller takes the calls whole from the Finish
                    if not batch and not thinking and not logprobs and sent_any:
                        continue
                message = _delta(batch, calls, thinking, served, not sent_any, request.accepts_pieces)
                if logprobs:
                    message.delta.logprobs_json = orjson.dumps(logprobs).decode()
                yield message
                sent_any = True
        except TollgateError as exc:
            if not sent_any:
                raise
            yield router_pb2.GenerateResponse(finish=_failed(served, request.model, exc))
            return
        yield router_pb2.GenerateResponse(finish=_finish(served, request.model, None))

    async def whole(self, request: router_pb2.GenerateRequest, served: Served) -> router_pb2.CompleteResponse:
        """Complete's reply. A failure before any text raises; after it, the reply is the text until
        then with a Finish saying error. ``served`` is filled as the call goes (what a cancel reports)."""
        chain, generation = self._prepare(request)
        parts: list[str] = []
        logprobs: list[dict[str, Any]] = []
        try:
            async for batch in self._run(chain, generation, served):
                parts.extend(batch)
                o = served.outcome
                served.pieces += len(batch) + len(o.tool_deltas) + len(o.thinking_deltas)
                o.tool_deltas.clear()  # the reply carries the calls and the thinking whole
                o.thinking_deltas.clear()
                if o.logprobs:
                    logprobs += o.take_logprobs()
        except TollgateError as exc:
            if not parts:
                raise
            failed = _failed(served, request.model, exc)
            return router_pb2.CompleteResponse(text="".join(parts), finish=failed)
        return router_pb2.CompleteResponse(
            text="".join(parts), finish=_finish(served, request.model, None),
            logprobs_json=orjson.dumps(logprobs).decode() if logprobs else "",
        )

    async def cancelled(self, request: router_pb2.GenerateRequest, served: Served) -> router_pb2.Finish:
        """What a call cancelled by its caller used, once its generation has stopped: the output
        counted until then, and the prompt's tokens if the backend had said them. An OpenAI-compatible
        server says them only in its last chunk (unless it has ``continuous_usage``), so for a call it
        was answering when cancelled the deployment is asked to count the prompt (``count_tokens``:
        vLLM's ``/tokenize``, OpenAI's input-token count), within ``CANCELLED_COUNT_SECONDS`` so the
        account reaches the edge before it stops waiting. A prompt no one could count is billed as
        zero, and counted, so an operator sees how much of a deployment's traffic that is."""
        o = served.outcome
        input_tokens = o.input_tokens
        if o.input_tokens == 0 and o.cached_input_tokens == 0 and not o.usage_reported:
            input_tokens = await _count_cut_prompt(served)
        output = served.output_so_far()
        return router_pb2.Finish(
            finish_reason="cancelled",
            usage=router_pb2.Usage(
                input_tokens=input_tokens, cached_input_tokens=o.cached_input_tokens,
                cache_write_tokens=o.cache_write_tokens, output_tokens=output,
                reasoning_tokens=min(o.reasoning_tokens, output),
            ),
            deployment_id=served.deployment_id, provider=served.provider, model_served=request.model,
            attempts=served.attempts,
        )

    async def count(self, request: router_pb2.GenerateRequest) -> router_pb2.CountTokensResponse:
        """CountTokens' reply: the first deployment of the chain that can count does. A deployment
        that cannot passes it on, as one that refuses a parameter does; a retryable failure moves on
        to the next (nothing is generated, so breakers keep no score of counts)."""
        chain, generation = self._prepare(request)
        refusal: UnsupportedByBackend | None = None
        last_error: TollgateError | None = None
        for deployment in chain:
            try:
                tokens = await deployment.backend.count_tokens(
                    replace(generation, upstream_model=deployment.upstream_model)
                )
            except UnsupportedByBackend as exc:
                refusal = refusal or exc
                continue
            except TollgateError as exc:
                if not retryable(exc):
                    raise
                log.warning("deployment_count_failed", deployment=deployment.id, error=exc.code)
                last_error = exc
                continue
            return router_pb2.CountTokensResponse(
                input_tokens=tokens, deployment_id=deployment.id, provider=deployment.provider
            )
        raise last_error or refusal or UnsupportedByBackend(COUNT_UNSUPPORTED)

    async def embed(self, request: router_pb2.EmbedRequest) -> router_pb2.EmbedResponse:
        """Embed's reply, from the first deployment of the chain that answers (``embed_with_fallback``)."""
        structlog.contextvars.bind_contextvars(request_id=request.request_id)
        embedding = embedding_request(request)
        served = Served(Outcome())
        chain = self._chain(request.model, request.end_user)
        result = await embed_with_fallback(chain, embedding, self._breakers, served, self._in_flight)
        if result.input_tokens == 0:
            USAGE_MISSING.labels(served.deployment_id).inc()  # nothing to bill the embedding by
            log.warning("backend_usage_missing", deployment=served.deployment_id)
        return router_pb2.EmbedResponse(
            embeddings=result.vectors, usage=router_pb2.Usage(input_tokens=result.input_tokens),
            deployment_id=served.deployment_id, provider=served.provider, model_served=request.model,
            attempts=served.attempts,
        )

    async def Generate(  # noqa: N802 - gRPC method name
        self, request: router_pb2.GenerateRequest, context: Context
    ) -> AsyncIterator[router_pb2.GenerateResponse]:
        try:
            async for message in self.events(request, Served(Outcome())):
                yield message
        except TollgateError as exc:  # raised only before the first message
            await _abort(context, exc)

    async def Complete(  # noqa: N802 - gRPC method name
        self, request: router_pb2.GenerateRequest, context: CompleteContext
    ) -> router_pb2.CompleteResponse:
        return await _reply_or_abort(self.whole(request, Served(Outcome())), context)

    async def CountTokens(  # noqa: N802 - gRPC method name
        self, request: router_pb2.GenerateRequest, context: CountContext
    ) -> router_pb2.CountTokensResponse:
        return await _reply_or_abort(self.count(request), context)

    async def Embed(  # noqa: N802 - gRPC method name
        self, request: router_pb2.EmbedRequest, context: EmbedContext
    ) -> router_pb2.EmbedResponse:
        return await _reply_or_abort(self.embed(request), context)

    async def Session(  # type: ignore[override]  # noqa: N802 - a coroutine writing via context.write
        self, request_iterator: AsyncIterator[router_pb2.EdgeFrames], context: SessionContext
    ) -> None:
        session = CallSession(self, context.write)
        self._sessions.add(session)
        try:
            await session.serve(request_iterator)
        finally:
            self._sessions.discard(session)

    def drain(self) -> None:
        """Tell every open session's edge to take new calls elsewhere (the router is stopping)."""
        for session in self._sessions:
            session.drain()


def _failed(served: Served, model: str, exc: TollgateError) -> router_pb2.Finish:
    served.outcome.finish_reason = "error"
    log.warning("generation_failed_after_first_byte", deployment=served.deployment_id, error=exc.code)
    return _finish(served, model, exc)


def _delta(
    pieces: list[str], calls: list[ToolCallDelta], thinking: list[ThinkingDelta], served: Served, first: bool,
    accepts_pieces: bool,
) -> router_pb2.GenerateResponse:
    """One message for what arrived together: as ``pieces`` to an edge that reads them, else (a single
    piece, or an edge older than pieces) as ``text``; then the tool-call fragments. Thinking, which
    only ever comes before the text it travels with, and only when asked for."""
    delta = router_pb2.Delta(output_tokens=served.output_so_far(), input_tokens=served.outcome.input_tokens)
    for piece in thinking:
        delta.thinking.add(index=piece.index, thinking=piece.thinking, signature=piece.signature,
                           redacted=piece.redacted)
    if len(pieces) == 1 or not accepts_pieces:
        delta.text = "".join(pieces)
    else:
        delta.pieces.extend(pieces)
    for call in calls:
        delta.tool_calls.add(index=call.index, id=call.id, name=call.name, arguments=call.arguments)
    if first:
        delta.deployment_id, delta.provider = served.deployment_id, served.provider
    return router_pb2.GenerateResponse(delta=delta)


def _finish(served: Served, model: str, error: TollgateError | None) -> router_pb2.Finish:
    o = served.outcome
    if error is None and not o.usage_reported:
        # a server that ignores stream_options.include_usage: what it generated cannot be billed
        USAGE_MISSING.labels(served.deployment_id).inc()
        log.warning("backend_usage_missing", deployment=served.deployment_id)
    return router_pb2.Finish(
        finish_reason=o.finish_reason,
        usage=router_pb2.Usage(
            input_tokens=o.input_tokens, cached_input_tokens=o.cached_input_tokens,
            cache_write_tokens=o.cache_write_tokens, output_tokens=o.output_tokens,
            reasoning_tokens=o.reasoning_tokens,
        ),
        deployment_id=served.deployment_id,
        provider=served.provider,
        model_served=model,
        attempts=served.attempts,
        error_code=(error.code or "") if error else "",
        stop_sequence=o.stop_sequence or "",
        error_message=error.message if error else "",
        tool_calls=[] if error else [
            router_pb2.ToolCall(id=c.id, name=c.name, arguments_json=c.arguments) for c in o.tool_calls
        ],
        thinking=[] if error else [
            router_pb2.ThinkingBlock(thinking=b.thinking, signature=b.signature, redacted=b.redacted,
                                     offset=b.offset, after_calls=b.after_calls) for b in o.thinking
        ],
    )


def build_server(service: RouterService, health_servicer: health_aio.HealthServicer) -> grpc.aio.Server:
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    router_pb2_grpc.add_RouterServiceServicer_to_server(service, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
