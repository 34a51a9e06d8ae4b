"""The edge's calls to the router: a Generate stream, or one Complete call for a client that did not
ask for a stream. ``RouterClient`` sends them over the Session (services/edge/router_session.py) and
falls back to the one-call RPCs below for a router without it (or when the session is turned off).

A failure before the first message is a gRPC status; it is turned back into the same error class
(services/edge/router_errors.py) so the client gets the right HTTP status and error type. Closing
the stream cancels the call, which cancels the backend request behind it.

A stream asked for with ``quiet_after`` also yields ``QUIET`` whenever that long has passed without a
message, so the handler can send the client a keep-alive while a model thinks (the generation goes
on); the non-stream paths never see it.

A router from before ``Complete`` answers it UNIMPLEMENTED (with no error code of ours); the edge then
asks the same thing through ``Generate`` and joins the answer, so a rolling upgrade works in either
order (routers first saves that extra call while the old routers drain).

A call the edge stops early (the client left, the deadline passed) is answered, over the Session,
with the router's account of what its generation used until it stopped (``stop()``, and
``complete``'s ``on_stopped``); the one-call RPCs have no way to say it, so their calls settle on
what the edge saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from services.common.errors import DependencyUnavailable
from services.edge.router_errors import from_rpc_error
from services.edge.router_session import RouterSession
from services.edge.session_call import QUIET
from tollgate.router.v1 import router_pb2, router_pb2_grpc

R = TypeVar("R")


class StreamCall(Protocol):
    """A streamed call, over the session or its own RPC. ``first()`` and ``rest()`` give ``QUIET``
    between messages when the call was started with ``quiet_after``."""

    async def first(self) -> router_pb2.GenerateResponse: ...

    def rest(self) -> AsyncIterator[router_pb2.GenerateResponse]: ...

    def cancel(self) -> None: ...

    async def stop(self) -> router_pb2.Finish | None:
        """Cancel the call, then the router's account of what it used (None where there is none)."""
        ...


class RouterClient:
    """Where the request handlers call the router."""

    def __init__(
        self, stub: router_pb2_grpc.RouterServiceAsyncStub, session: bool, sessions: int = 1,
        rehome_seconds: float = 60.0,
    ) -> None:
        """``sessions`` > 1 keeps that many Session streams, each moving to the next router now and then
        (``RouterSession``): on a round-robin channel the calls of one edge reach every router. A new
        call goes to the session with the fewest calls still running (ties in turn): a router that
        answers slowly (overloaded, a long pause, a slow host) collects running calls and gets fewer
        new ones, where plain turns would keep giving it an equal share. One session (the default)
        stays where it is."""
        self._stub = stub
        rehome = rehome_seconds if sessions > 1 else None
        self.sessions = [RouterSession(stub, rehome) for _ in range(sessions)] if session else []
        self._turn = 0

    def _session(self) -> RouterSession | None:
        count = len(self.sessions)
        if count < 2:
            return self.sessions[0] if self.sessions else None
        first = self._turn
        self._turn = (first + 1) % count
        # min keeps the first of equals, and the scan starts one further on each call: ties take turns
        return min((self.sessions[(first + i) % count] for i in range(count)), key=_open_calls)

    async def stream(
        self, request: router_pb2.GenerateRequest, timeout: float, quiet_after: float | None = None
    ) -> StreamCall:
        if (session := self._session()) is not None:
            call = await session.start(request, True, timeout, quiet_after)
            if call is not None:
                return call
        return RouterCall(self._stub, request, timeout, quiet_after)

    async def complete(
        self, request: router_pb2.GenerateRequest, timeout: float,
        on_stopped: Callable[[router_pb2.Finish], None] | None = None,
    ) -> router_pb2.CompleteResponse:
        """Cancelling the awaiting task cancels the call, and the generation behind it. A call that
        ends without its answer (cancelled, timed out, its stream lost) gives ``on_stopped`` the
        router's account of what it used, where the router sent one, before the error propagates."""
        if (session := self._session()) is not None:
            call = await session.start(request, False, timeout)
            if call is not None:
                try:
                    return await call.whole()
                except BaseException:
                    account = await call.stop()
                    if account is not None and on_stopped is not None:
                        on_stopped(account)
                    raise
        return await complete(self._stub, request, timeout)

    async def count_tokens(
        self, request: router_pb2.GenerateRequest, timeout: float
    ) -> router_pb2.CountTokensResponse:
        """One CountTokens call, always its own RPC: counts are rare next to generations."""
        reply: router_pb2.CountTokensResponse = await _unary(self._stub.CountTokens(request, timeout=timeout))
        return reply

    async def embed(self, request: router_pb2.EmbedRequest, timeout: float) -> router_pb2.EmbedResponse:
        """One Embed call, its own RPC (one request, one answer: nothing for the session to batch
        that a unary call does not already pay once). Cancelling the awaiting task cancels it."""
        reply: router_pb2.EmbedResponse = await _unary(self._stub.Embed(request, timeout=timeout))
        return reply

    def close(self) -> None:
        for session in self.sessions:
            session.close()


async def _unary(call: Awaitable[R]) -> R:
    """A unary call's reply, or its gRPC error as the error class it stands for."""
    try:
        return await call
    except grpc.aio.AioRpcError as err:
        raise from_rpc_error(err) from None


def _open_calls(session: RouterSession) -> int:
    return session.open_calls


class RouterCall:
    """One Generate call: ``first()`` waits for the first message, then iterate for the rest.

    With ``quiet_after`` each read runs in a task of its own, so that waiting for it can time out
    without cancelling it (cancelling a grpc.aio read cancels the call). That costs a task per message,
    on the path used only without the Session; the Session's calls watch for quiet with one timer."""

    def __init__(
        self, router: router_pb2_grpc.RouterServiceAsyncStub, request: router_pb2.GenerateRequest,
        timeout: float, quiet_after: float | None = None,
    ) -> None:
        self._call = router.Generate(request, timeout=timeout)
        self._iter = self._call.__aiter__()
        self._quiet_after = quiet_after
        self._reading: asyncio.Future[router_pb2.GenerateResponse | None] | None = None

    async def _next(self) -> router_pb2.GenerateResponse | None:
        """The next message, ``QUIET``, or None at the end of the stream."""
        if self._quiet_after is None:
            return await anext(self._iter, None)
        if self._reading is None:
            self._reading = asyncio.ensure_future(anext(self._iter, None))
        done, _ = await asyncio.wait((self._reading,), timeout=self._quiet_after)
        if not done:
            return QUIET  # the read goes on: the next call waits for the same message
        reading, self._reading = self._reading, None
        return reading.result()

    async def first(self) -> router_pb2.GenerateResponse:
        try:
            message = await self._next()
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        if message is None:
            raise DependencyUnavailable("The model router ended the stream without an answer.")
        return message

    async def rest(self) -> AsyncIterator[router_pb2.GenerateResponse]:
        try:
            while (message := await self._next()) is not None:
                yield message
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None

    async def stop(self) -> None:
        """Cancel the call: a cancelled RPC says nothing more, so there is no account."""
        self.cancel()

    def cancel(self) -> None:
        """Stop the call (and the generation behind it); nothing to do once it has ended."""
        if not self._call.done():
            self._call.cancel()
        if (reading := self._reading) is not None:
            self._reading = None
            if not reading.done():
                reading.cancel()
            elif not reading.cancelled():
                reading.exception()  # read and let go: no "exception never retrieved" at collection


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
        raise from_rpc_error(err) from None
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
