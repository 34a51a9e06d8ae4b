"""What one load run is asked to do and what it measured, and how the orchestrator runs one.

The generator is a separate process (``python -m bench.loadgen``) pinned to its own core: the spec goes
in on stdin as JSON, the result comes back on stdout as JSON. It samples the CPU time of the processes
it is told to watch exactly at the edges of its measurement window.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Literal

from infra.stack.paths import REPO_ROOT

Mode = Literal["closed", "open"]


@dataclass(frozen=True)
class LoadSpec:
    host: str
    port: int
    request: str  # the whole HTTP/1.1 request, head and body, as latin-1 text
    mode: Mode = "closed"
    concurrency: int = 16  # closed loop: connections, each with one request in flight
    rate: float = 300.0  # open loop: requests started per second, whatever is still in flight
    warmup: float = 1.0  # seconds run before the window, not recorded
    duration: float = 8.0  # the measurement window
    stream: bool = False  # count SSE data events (chunks) in each answer
    watch: dict[str, int] = field(default_factory=dict)  # name -> pid whose CPU time is sampled


@dataclass
class LoadResult:
    requests: int = 0  # completed with 200 inside the window
    errors: int = 0  # non-200, an error event in the stream, or a broken connection
    window: float = 0.0  # seconds actually measured
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    chunks: int = 0  # SSE data events received (without [DONE]) by the requests counted
    cpu_s: dict[str, float] = field(default_factory=dict)  # watched pid name -> CPU seconds in window
    self_cpu_s: float = 0.0  # the generator's own CPU seconds in the window
    core_busy: dict[str, float] = field(default_factory=dict)  # "cpu0" -> busy fraction in window
    connections_opened: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.window if self.window else 0.0

    def cpu_ms_per_request(self, *names: str) -> float:
        return 1000 * sum(self.cpu_s.get(n, 0.0) for n in names) / self.requests if self.requests else 0.0

    def cpu_us_per_chunk(self, *names: str) -> float:
        return 1e6 * sum(self.cpu_s.get(n, 0.0) for n in names) / self.chunks if self.chunks else 0.0


def http_request(host: str, port: int, path: str, body: dict[str, object], bearer: str | None) -> str:
    """One keep-alive HTTP/1.1 POST with a JSON body, ready to be written as is."""
    payload = json.dumps(body, separators=(",", ":"))
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {host}:{port}",
        "content-type: application/json",
        "accept: application/json, text/event-stream",
        f"content-length: {len(payload.encode())}",
    ]
    if bearer is not None:
        lines.append(f"authorization: Bearer {bearer}")
    return "\r\n".join(lines) + "\r\n\r\n" + payload


def run_load(spec: LoadSpec, cpu: int, timeout: float | None = None) -> LoadResult:
    """Run the generator pinned to ``cpu`` and wait for its result."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and module, arguments fixed here
        ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.loadgen"],  # noqa: S607
        input=json.dumps(asdict(spec)), capture_output=True, text=True, cwd=REPO_ROOT, check=False,
        timeout=timeout if timeout is not None else spec.warmup + spec.duration + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
    raw = json.loads(done.stdout)
    return LoadResult(**raw)
