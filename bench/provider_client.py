"""The router's provider HTTP client against aiohttp, measured in the same run on the same upstream.

Each side is its own process pinned to the platform core, a closed loop at concurrency 16 of the
bench's streamed 12-chunk answer from the zero-delay replaying upstream (on the load core), every
answer's SSE decoded: ours through ``sse_batches`` (the router's own path: pool, silence watch, SSE
decoder), aiohttp through a pooled ``ClientSession`` inside the same watch and decoding loop (the
router's path before its own client). The two alternate for
``ROUNDS`` rounds and the medians are compared: the number behind replacing aiohttp
(docs/backends.md), kept reproducible. aiohttp is not a dependency of Tollgate (the test stack's
localstripe brings it); without it only our client is measured.

``python -m bench.provider_client drive PORT CLIENT SECONDS`` runs one measurement and prints JSON;
``measure`` runs the rounds under ``taskset``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import orjson
import uvloop

from infra.stack.paths import REPO_ROOT
from services.router.backends.http import DEFAULT_TIMEOUTS, ReadWatch, new_provider_http, sse_batches
from services.router.backends.sse import Event, SSEDecoder

CONCURRENCY = 16
ROUNDS = 3
BODY = orjson.dumps({
    "model": "ok:bench-client", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16,
    "stream": True, "stream_options": {"include_usage": True},
})
HEADERS = {"content-type": "application/json", "accept": "text/event-stream"}


@dataclass(frozen=True)
class ClientCost:
    client: str
    answers_per_s: float
    cpu_us: float  # CPU per streamed answer


async def _loop(one: Callable[[], Awaitable[int]], seconds: float) -> tuple[int, float]:
    """Answers completed and CPU seconds spent in ``seconds`` of closed loop (after a short warm-up)."""
    warm_until = time.monotonic() + 0.5
    while time.monotonic() < warm_until:
        await one()
    stop = time.monotonic() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop:
            if await one() < 12:
                raise RuntimeError("the upstream's answer had fewer events than the bench's 12 chunks")
            done += 1

    began = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done, time.process_time() - began


async def _ours(url: str, seconds: float) -> tuple[int, float]:
    async with new_provider_http(max_connections=CONCURRENCY * 2) as http:
        async def one() -> int:
            events = 0
            async for batch in sse_batches(http, url, BODY, HEADERS, ReadWatch(DEFAULT_TIMEOUTS), ()):
                events += len(batch)
            return events

        return await _loop(one, seconds)


async def _aiohttp(url: str, seconds: float) -> tuple[int, float]:
    """aiohttp as the router used it until 2026-11-25: the same silence watch and SSE loop around a
    pooled session without cookies, so the two differ only in the HTTP client."""
    import aiohttp  # only here: not a dependency of Tollgate

    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:
        async def batches() -> AsyncGenerator[list[Event], None]:
            watch = ReadWatch(DEFAULT_TIMEOUTS)
            clock = asyncio.get_running_loop().time
            watch.begin()
            try:
                async with session.post(url, data=BODY, headers=HEADERS) as response:
                    if not 200 <= response.status < 300:
                        raise RuntimeError(f"the upstream answered {response.status}")
                    decoder = SSEDecoder()
                    while data := await response.content.readany():
                        if events := decoder.feed(data):
                            watch.holding()
                            yield events
                        watch.waiting(clock())
            finally:
                watch.end()

        async def one() -> int:
            events = 0
            async for batch in batches():
                events += len(batch)
            return events

        return await _loop(one, seconds)


def drive(port: int, client: str, seconds: float) -> ClientCost:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    run = _ours if client == "tollgate" else _aiohttp
    done, cpu = uvloop.run(run(url, seconds))
    return ClientCost(client, done / seconds, cpu / max(done, 1) * 1e6)


def aiohttp_installed() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def measure(upstream_port: int, cpu: int, seconds: float) -> dict[str, list[ClientCost]]:
    """Alternated rounds of each client, each run in its own process on core ``cpu``."""
    clients = ["tollgate", "aiohttp"] if aiohttp_installed() else ["tollgate"]
    runs: dict[str, list[ClientCost]] = {client: [] for client in clients}
    for round_ in range(ROUNDS):
        order = clients if round_ % 2 == 0 else clients[::-1]  # neither always runs first
        for client in order:
            out = subprocess.run(  # noqa: S603 - our own interpreter and module
                ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.provider_client", "drive",  # noqa: S607
                 str(upstream_port), client, str(seconds)],
                cwd=REPO_ROOT, check=True, capture_output=True, text=True, timeout=seconds + 60,
            )
            runs[client].append(ClientCost(**json.loads(out.stdout)))
    return runs


def median_cpu_us(runs: list[ClientCost]) -> float:
    return statistics.median(r.cpu_us for r in runs)


if __name__ == "__main__":
    if sys.argv[1] == "drive":
        cost = drive(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
        print(json.dumps(cost.__dict__))
