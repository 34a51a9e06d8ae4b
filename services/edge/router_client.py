"""The edge's side of the one gRPC call to the router: a Generate stream, or one Complete call for a
client that did not ask for a stream.

A failure before the first message is a gRPC status; it is turned back into the same error class
(the router puts the error's code in the ``tollgate-error-code`` trailer) so the client gets the
right HTTP status and error type. Closing the stream cancels the call, which cancels the backend
request behind it.

A router from before ``Complete`` answers it UNIMPLEMENTED (with no error code of ours); the edge then
asks the same thing through ``Generate`` and joins the answer, so a rolling upgrade works in either
order (routers first saves that extra call while the old routers drain).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.common.errors import DependencyUnavailable, TollgateError, from_grpc
from services.edge.finish import error_for_code
from tollgate.router.v1 import router_pb2, router_pb2_grpc


def _error(err: grpc.aio.AioRpcError) -> TollgateError:
    metadata: Any = err.trailing_metadata()  # grpc.aio.Metadata at run time (the stubs say tuples)
    exc = _classify(err, metadata.get("tollgate-error-code") if metadata is not None else None)
    wait = metadata.get("tollgate-retry-after") if metadata is not None else None
    if isinstance(wait, str):
        try:
            exc.retry_after = max(0.0, float(wait))
        except ValueError:
            pass
    return exc


def _classify(err: grpc.aio.AioRpcError, code: object) -> TollgateError:
    if isinstance(code, str) and code:
        known = error_for_code(code, err.details() or "")
        if known is not None:
            return known
    if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED) and code is None:
        # no code from the router: the call never reached it, or was dropped (seen under overload)
        return DependencyUnavailable("The model router is unavailable; try again shortly.")
    exc = from_grpc(err.code(), err.details() or "backend error")
    if isinstance(code, str) and code:
        exc.code = code
    return exc


class RouterCall:
    """One Generate call: ``first()`` waits for the first message, then iterate for the rest."""

    def __init__(
        self, router: router_pb2_grpc.RouterServiceAsyncStub, request: router_pb2.GenerateRequest,
        timeout: float,
    ) -> None:
        self._call = router.Generate(request, timeout=timeout)
        self._iter = self._call.__aiter__()

    async def first(self) -> router_pb2.GenerateResponse:
        try:
            return await anext(self._iter)
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None
        except StopAsyncIteration:
            raise DependencyUnavailable("The model router ended the stream without an answer.") from None

    async def rest(self) -> AsyncIterator[router_pb2.GenerateResponse]:
        try:
            async for message in self._iter:
                yield message
        except grpc.aio.AioRpcError as err:
            raise _error(err) from None

    def cancel(self) -> None:
        """Stop the call (and the generation behind it); nothing to do once it has ended."""
        if not self._call.done():
            self._call.cancel()


async def complete(
    router: router_pb2_grpc.RouterServiceAsyncStub, request: router_pb2.GenerateRequest, timeout: float
) -> router_pb2.CompleteResponse:
    """One Complete call. Cancelling the awaiting task cancels the call, and the generation behind it."""
    try:
        reply: router_pb2.CompleteResponse = await router.Complete(request, timeout=timeout)
    except grpc.aio.AioRpcError as err:
        metadata: Any = err.trailing_metadata()
        ours = metadata is not None and metadata.get("tollgate-error-code")
        if err.code() == grpc.StatusCode.UNIMPLEMENTED and not ours:
            return await _complete_through_generate(router, request, timeout)
        raise _error(err) from None
    return reply


async def _complete_through_generate(
    router: router_pb2_grpc.RouterServiceAsyncStub, request: router_pb2.GenerateRequest, timeout: float
) -> router_pb2.CompleteResponse:
    """The answer ``Complete`` would give, from a router that only has ``Generate``."""
    call = RouterCall(router, request, timeout)
    texts: list[str] = []
    try:
        message: router_pb2.GenerateResponse | None = await call.first()
        rest = call.rest()
        while message is not None and not message.HasField("finish"):
            texts.append(message.delta.text)
            texts.extend(message.delta.pieces)
            message = await anext(rest, None)
    finally:
        call.cancel()
    if message is None:
        raise DependencyUnavailable("The model router ended the stream without an answer.")
    return router_pb2.CompleteResponse(text="".join(texts), finish=message.finish)
