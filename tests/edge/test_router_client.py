"""The edge's router client against a real gRPC server: a router from before ``Complete`` (a rolling
upgrade that reached the edges first) still answers non-stream requests, through ``Generate``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from services.common.errors import RateLimited
from services.edge.router_client import complete
from tollgate.router.v1 import router_pb2, router_pb2_grpc

REQUEST = router_pb2.GenerateRequest(request_id="req_" + "0" * 24, model="m", accepts_pieces=True)
FINISH = router_pb2.Finish(
    finish_reason="stop", usage=router_pb2.Usage(input_tokens=9, output_tokens=3), attempts=1,
)


class _RouterBeforeComplete(router_pb2_grpc.RouterServiceServicer):
    """Generate only: ``Complete`` answers UNIMPLEMENTED, as from a router built before it existed."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.calls = 0

    async def Generate(  # noqa: N802 - gRPC method name
        self, request: router_pb2.GenerateRequest, context: Any
    ) -> AsyncIterator[router_pb2.GenerateResponse]:
        self.calls += 1
        if self.refuse:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down",
                trailing_metadata=(("tollgate-error-code", "rate_limit_exceeded"),),
            )
        yield router_pb2.GenerateResponse(delta=router_pb2.Delta(text="Hel", output_tokens=1))
        yield router_pb2.GenerateResponse(delta=router_pb2.Delta(pieces=["l", "o"], output_tokens=2))
        yield router_pb2.GenerateResponse(finish=FINISH)


async def _serve(servicer: _RouterBeforeComplete) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    router_pb2_grpc.add_RouterServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_a_router_without_complete_answers_through_generate() -> None:
    servicer = _RouterBeforeComplete()
    server, port = await _serve(servicer)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await complete(router_pb2_grpc.RouterServiceStub(channel), REQUEST, timeout=10)
    finally:
        await server.stop(None)
    assert servicer.calls == 1
    assert reply.text == "Hello"
    assert reply.finish == FINISH


async def test_an_error_from_the_older_router_keeps_its_type() -> None:
    server, port = await _serve(_RouterBeforeComplete(refuse=True))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(RateLimited):
                await complete(router_pb2_grpc.RouterServiceStub(channel), REQUEST, timeout=10)
    finally:
        await server.stop(None)
