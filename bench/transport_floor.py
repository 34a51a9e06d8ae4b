"""The floor under the edge -> router hop, measured in the same run as the platform.

A bare ``RouterService`` (canned replies, no routing, no backend) in one process and a bare client in
another, both pinned to the platform core like edge and router, closed loop at concurrency 16. What
is left is what the design's process boundary costs in gRPC alone: the platform's CPU per request
can only approach the 1 ms target from above this line.

``python -m bench.transport_floor serve PORT`` runs the server; ``drive PORT PID KIND SECONDS`` runs
one measurement and prints it as JSON; ``measure`` runs both under ``taskset`` and collects results.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import uvloop

from bench.loadgen import proc_cpu_seconds
from infra.stack.paths import REPO_ROOT
from infra.stack.ports import free_port
from infra.stack.process import wait_until
from services.edge.router_client import RouterClient
from services.router.backends import Outcome
from services.router.fallback import Served
from services.router.session import CallSession
from tollgate.router.v1 import router_pb2, router_pb2_grpc

CONCURRENCY = 16
PIECES = [f" word{i}" for i in range(12)]  # the bench's short answer: 12 chunks
REQUEST = router_pb2.GenerateRequest(
    request_id="req_" + "0" * 24, account_id="acct_bench", model="bench-floor",
    chat=router_pb2.ChatInput(messages=[router_pb2.ChatMessage(role="user", content="Say hello.")]),
    sampling=router_pb2.SamplingParams(max_tokens=16),
)
FINISH = router_pb2.Finish(
    finish_reason="stop", usage=router_pb2.Usage(input_tokens=9, output_tokens=12),
    deployment_id="floor-dep", provider="openai", model_served="bench-floor", attempts=1,
)


@dataclass(frozen=True)
class Floor:
    kind: str
    calls_per_s: float
    client_ms: float  # CPU per call
    server_ms: float

    @property
    def total_ms(self) -> float:
        return self.client_ms + self.server_ms


class _Bare(router_pb2_grpc.RouterServiceServicer):
    async def events(
        self, request: router_pb2.GenerateRequest, served: Served
    ) -> AsyncIterator[router_pb2.GenerateResponse]:
        yield router_pb2.GenerateResponse(delta=router_pb2.Delta(pieces=PIECES, output_tokens=12))
        yield router_pb2.GenerateResponse(finish=FINISH)

    async def whole(self, request: router_pb2.GenerateRequest, served: Served) -> router_pb2.CompleteResponse:
        return router_pb2.CompleteResponse(text="".join(PIECES), finish=FINISH)

    async def cancelled(self, request: router_pb2.GenerateRequest, served: Served) -> router_pb2.Finish:
        return router_pb2.Finish(finish_reason="cancelled")

    async def Generate(  # noqa: N802 - gRPC method name
        self, request: router_pb2.GenerateRequest, context: Any
    ) -> AsyncIterator[router_pb2.GenerateResponse]:
        async for message in self.events(request, Served(Outcome())):
            yield message

    async def Complete(  # noqa: N802 - gRPC method name
        self, request: router_pb2.GenerateRequest, context: Any
    ) -> router_pb2.CompleteResponse:
        return await self.whole(request, Served(Outcome()))

    async def CountTokens(  # noqa: N802 - gRPC method name
        self, request: router_pb2.GenerateRequest, context: Any
    ) -> router_pb2.CountTokensResponse:
        return router_pb2.CountTokensResponse(input_tokens=9)

    async def Embed(  # noqa: N802 - gRPC method name
        self, request: router_pb2.EmbedRequest, context: Any
    ) -> router_pb2.EmbedResponse:
        return router_pb2.EmbedResponse(embeddings=[b"\0\0\0\0"] * len(request.inputs))

    async def Session(  # type: ignore[override]  # noqa: N802 - a coroutine writing via context.write
        self, request_iterator: AsyncIterator[router_pb2.EdgeFrames], context: Any
    ) -> None:
        await CallSession(self, context.write).serve(request_iterator)


async def _serve(port: int) -> None:
    server = grpc.aio.server()
    router_pb2_grpc.add_RouterServiceServicer_to_server(_Bare(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _drive(port: int, server_pid: int, kind: str, seconds: float) -> dict[str, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        session = RouterClient(stub, session=True)
        calls = 0

        async def one() -> None:
            if kind == "session":
                await session.complete(REQUEST, timeout=10)
            elif kind == "unary":
                await stub.Complete(REQUEST, timeout=10)
            else:
                async for _ in stub.Generate(REQUEST, timeout=10):
                    pass

        async def worker(until: float) -> None:
            nonlocal calls
            while time.monotonic() < until:
                await one()
                calls += 1

        await asyncio.gather(*(worker(time.monotonic() + 1.0) for _ in range(CONCURRENCY)))  # warm-up
        calls = 0
        began, cpu, server_cpu = time.monotonic(), time.process_time(), proc_cpu_seconds(server_pid)
        await asyncio.gather(*(worker(time.monotonic() + seconds) for _ in range(CONCURRENCY)))
        window = time.monotonic() - began
        session.close()
        return {
            "calls_per_s": calls / window,
            "client_ms": 1000 * (time.process_time() - cpu) / calls,
            "server_ms": 1000 * (proc_cpu_seconds(server_pid) - server_cpu) / calls,
        }


def measure(cpu: int, seconds: float) -> list[Floor]:
    """Unary (Complete), a two-message stream (Generate), and Complete over the Session (what a
    non-stream request uses; at this closed loop its messages carry many calls each)."""
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.transport_floor", "serve", str(port)],  # noqa: S607
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _listening(port), 20, "bare gRPC server")
        floors = []
        for kind in ("unary", "stream", "session"):
            done = subprocess.run(  # noqa: S603 - our own interpreter and module
                ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.transport_floor", "drive",  # noqa: S607
                 str(port), str(server.pid), kind, str(seconds)],
                cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=seconds + 60,
            )
            floors.append(Floor(kind=kind, **json.loads(done.stdout)))
        return floors
    finally:
        server.terminate()
        server.wait(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str]) -> None:
    if argv[0] == "serve":
        uvloop.run(_serve(int(argv[1])))
    else:
        port, pid, kind, seconds = int(argv[1]), int(argv[2]), argv[3], float(argv[4])
        print(json.dumps(uvloop.run(_drive(port, pid, kind, seconds))))


if __name__ == "__main__":
    main(sys.argv[1:])
