"""The load generator: ``python -m bench.loadgen`` < spec.json > result.json.

Raw HTTP/1.1 on an asyncio Protocol on uvloop, one keep-alive connection per in-flight request, the
request bytes built once. It parses only what it must (status, content-length or chunked framing) so
that it is not what limits a run; the bench reports its own CPU per request to prove it.

Closed loop: ``concurrency`` connections, each sending its next request as soon as the previous answer
ends. Open loop: a request is started every ``1/rate`` seconds on an idle connection (a new one when
none is idle), so a slow answer cannot slow the offered load; latency is taken from the moment the
request's slot came.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import cast

from bench.spec import LoadResult, LoadSpec

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ERROR_SAMPLES = 5
DRAIN_SECONDS = 10.0


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def core_times() -> dict[str, tuple[int, int]]:
    """Per core: (busy, total) jiffies from /proc/stat."""
    out: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values[:8]]
            total = sum(ticks)
            out[name] = (total - ticks[3] - ticks[4], total)  # idle and iowait are not busy
    return out


class Connection(asyncio.Protocol):
    """One keep-alive connection; the answer is parsed in ``data_received``, without a coroutine
    step per chunk."""

    def __init__(self, host: str, port: int, stats: Recorder) -> None:
        self.host, self.port, self.stats = host, port, stats
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.buf = bytearray()
        self.pos = 0  # where parsing resumes in buf
        self.head: bytes | None = None
        self.length = -1  # content-length, or -1 for chunked
        self.parts: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a registered subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            try:
                self._parse()
            except ValueError as exc:
                self.waiter.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def _parse(self) -> None:
        buf = self.buf
        assert self.waiter is not None
        if self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head = bytes(buf[:end + 4]).lower()
            self.pos = end + 4
            at = self.head.find(b"content-length:")
            if b"transfer-encoding: chunked" in self.head:
                self.length = -1
            else:
                self.length = int(self.head[at + 15:self.head.index(b"\r\n", at)]) if at >= 0 else 0
        close = b"connection: close" in self.head
        if self.length >= 0:
            if len(buf) >= self.pos + self.length:
                body = bytes(buf[self.pos:self.pos + self.length])
                self.waiter.set_result((int(self.head[9:12]), body, close))
            return
        while True:
            line_end = buf.find(b"\r\n", self.pos)
            if line_end < 0:
                return
            size = int(bytes(buf[self.pos:line_end]).split(b";", 1)[0], 16)
            if len(buf) < line_end + size + 4:
                return
            if size == 0:  # no trailers are sent
                self.waiter.set_result((int(self.head[9:12]), b"".join(self.parts), close))
                return
            self.parts.append(bytes(buf[line_end + 2:line_end + 2 + size]))
            self.pos = line_end + size + 4

    async def exchange(self, payload: bytes, stream: bool) -> tuple[bool, int, str]:
        """Send one request and read its whole answer: (ok, SSE chunks, error text)."""
        loop = asyncio.get_running_loop()
        if self.transport is None:
            transport, _ = await loop.create_connection(lambda: self, self.host, self.port)
            self.transport = transport  # uvloop may call connection_made only after this returns
            self.stats.connections_opened += 1
        self.buf, self.pos, self.head, self.parts = bytearray(), 0, None, []
        self.waiter = loop.create_future()
        self.transport.write(payload)
        status, body, close = await self.waiter
        if close:
            self.close()
        chunks = body.count(b"data:") - body.count(b"data: [DONE]") if stream else 0
        if status != 200:
            return False, 0, f"HTTP {status}: {body[:200]!r}"
        if stream and b'"error"' in body:
            return False, chunks, f"error event: {body[-200:]!r}"
        return True, chunks, ""

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.transport = None


class Recorder:
    """Counts what completes inside the window [start, end]."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.latencies: list[float] = []
        self.chunks = 0
        self.errors = 0
        self.connections_opened = 0
        self.samples: list[str] = []

    async def one(self, conn: Connection, payload: bytes, stream: bool, began: float) -> None:
        try:
            ok, chunks, error = await conn.exchange(payload, stream)
        except (OSError, ValueError) as exc:
            conn.close()
            ok, chunks, error = False, 0, f"{type(exc).__name__}: {exc}"
        ended = time.perf_counter()
        if not self.start <= ended <= self.end:
            return
        if ok:
            self.latencies.append(ended - began)
            self.chunks += chunks
        else:
            self.errors += 1
            if len(self.samples) < ERROR_SAMPLES:
                self.samples.append(error)


async def _closed(spec: LoadSpec, rec: Recorder, payload: bytes) -> None:
    async def worker() -> None:
        conn = Connection(spec.host, spec.port, rec)
        while (began := time.perf_counter()) < rec.end:
            await rec.one(conn, payload, spec.stream, began)
        conn.close()

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))


async def _open(spec: LoadSpec, rec: Recorder, payload: bytes, first: float) -> None:
    idle = [Connection(spec.host, spec.port, rec) for _ in range(spec.concurrency)]
    tasks: set[asyncio.Task[None]] = set()

    async def one(slot: float) -> None:
        conn = idle.pop() if idle else Connection(spec.host, spec.port, rec)
        await rec.one(conn, payload, spec.stream, slot)
        idle.append(conn)

    index = 0
    while (slot := first + index / spec.rate) < rec.end:
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(slot))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        index += 1
    if tasks:  # a platform that cannot keep up leaves a backlog: give it a bounded time to drain
        _, late = await asyncio.wait(tasks, timeout=DRAIN_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    for conn in idle:
        conn.close()


async def run(spec: LoadSpec) -> LoadResult:
    first = time.perf_counter() + 0.05
    rec = Recorder(first + spec.warmup, first + spec.warmup + spec.duration)
    payload = spec.request.encode("latin-1")
    samples: dict[str, tuple[dict[str, float], float, dict[str, tuple[int, int]], float]] = {}

    async def sample(name: str, at: float) -> None:
        await asyncio.sleep(max(at - time.perf_counter(), 0))
        cpu = {n: proc_cpu_seconds(pid) for n, pid in spec.watch.items()}
        samples[name] = (cpu, time.process_time(), core_times(), time.perf_counter())

    sampler = asyncio.gather(sample("start", rec.start), sample("end", rec.end))
    if spec.mode == "closed":
        await _closed(spec, rec, payload)
    else:
        await _open(spec, rec, payload, first)
    await sampler
    (cpu0, self0, cores0, t0), (cpu1, self1, cores1, t1) = samples["start"], samples["end"]
    lat = sorted(rec.latencies)

    def pct(q: float) -> float:
        return 1000 * lat[min(int(q * len(lat)), len(lat) - 1)] if lat else 0.0

    return LoadResult(
        requests=len(lat), errors=rec.errors, window=t1 - t0,
        p50_ms=pct(0.50), p99_ms=pct(0.99), max_ms=1000 * lat[-1] if lat else 0.0, chunks=rec.chunks,
        cpu_s={n: cpu1[n] - cpu0[n] for n in spec.watch}, self_cpu_s=self1 - self0,
        core_busy={c: (cores1[c][0] - cores0[c][0]) / max(cores1[c][1] - cores0[c][1], 1) for c in cores1},
        connections_opened=rec.connections_opened, error_samples=rec.samples,
    )


def main() -> None:
    import uvloop

    spec = LoadSpec(**json.loads(sys.stdin.read()))
    result: LoadResult = uvloop.run(run(spec))
    sys.stdout.write(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
