"""``python -m bench [--duration S] [--quick] | --metering``: start, drive, print, stop.

Runs, each a fixed-duration closed loop after a short unrecorded warm-up, direct and platform side by
side: non-stream and stream at each concurrency, in rounds (``--repeat``; the median round counts);
then an open loop at a fixed rate for the added latency; then the generator's own ceiling. Nothing is
asserted: the targets are printed as PASS/MISS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench.admission_cost import admission_cost
from bench.loadgen import proc_cpu_seconds
from bench.provider_client import measure as measure_clients
from bench.provider_client import median_cpu_us
from bench.report import PLATFORM, Results, render
from bench.spec import LoadResult, LoadSpec, Mode, http_request, run_load
from bench.stack import BenchStack, frames_per_message, session_counts
from bench.transport_floor import measure as measure_floor

HOST = "127.0.0.1"
PATH = "/v1/chat/completions"
PROMPT = [{"role": "user", "content": "Say hello."}]


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: through the finally that stops everything


def _pin_all_threads(pid: int, cpu: int) -> None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


class Bench:
    def __init__(self, stack: BenchStack, args: argparse.Namespace) -> None:
        self.stack, self.args = stack, args
        self.res = Results(rate=args.rate)

    def request(
        self, target: str, stream: bool, limited: bool = False, scenario: str = "ok"
    ) -> tuple[int, str]:
        direct = target == "direct"
        port = self.stack.upstream_port if direct else self.stack.edge_port
        body: dict[str, object] = {
            "model": (
                f"{scenario}:bench-direct-{self.stack.tag}" if direct else self.stack.model_for(scenario)
            ),
            "messages": PROMPT, "max_tokens": 16,
        }
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        key = self.stack.limited_secret if limited else self.stack.secret
        bearer = "sk-bench-direct" if direct else key
        return port, http_request(HOST, port, PATH, body, bearer)

    def load(
        self, target: str, stream: bool, label: str, concurrency: int, mode: Mode = "closed",
        rate: float = 0.0, duration: float | None = None, limited: bool = False, scenario: str = "ok",
    ) -> LoadResult:
        port, request = self.request(target, stream, limited, scenario)
        direct = target == "direct"
        spec = LoadSpec(
            HOST, port, request, mode=mode, concurrency=concurrency, rate=rate, warmup=self.args.warmup,
            duration=duration or self.args.duration, stream=stream, watch=self.stack.pids(),
        )
        counted = session_counts(self.stack.edge_port) if not direct else {}
        result = run_load(spec, cpu=self.args.load_cpu)
        per = result.cpu_ms_per_request(*PLATFORM)
        cpu = "" if direct else (
            f", platform {per:.3f} ms CPU/req, frames per session message: "
            + frames_per_message(counted, session_counts(self.stack.edge_port))
        )
        print(f"  {target:8} {label:22} {result.rps:7.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
              f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}{cpu}", flush=True)
        if result.error_samples:
            print(f"    first errors: {result.error_samples[:2]}", flush=True)
        self.settle()
        return result

    def settle(self, busy: float = 0.05, limit: float = 30.0) -> None:
        """Wait until edge and router are idle again: an overloaded run leaves a backlog behind."""
        pids = self.stack.pids()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            before = sum(proc_cpu_seconds(pids[n]) for n in PLATFORM)
            time.sleep(0.5)
            if sum(proc_cpu_seconds(pids[n]) for n in PLATFORM) - before < busy * 0.5:
                return

    def warm_up(self) -> None:
        for stream in (False, True):
            label = f"{'stream' if stream else 'non-stream'} warm-up"
            r = self.load("platform", stream, label, concurrency=16, duration=self.args.warmup * 2)
            if r.requests == 0 or r.errors:
                raise RuntimeError(f"the platform does not answer cleanly: {r.error_samples}")

    def idle(self, seconds: float = 2.0) -> None:
        pids = self.stack.pids()
        before = sum(proc_cpu_seconds(pids[n]) for n in PLATFORM)
        time.sleep(seconds)
        after = sum(proc_cpu_seconds(pids[n]) for n in PLATFORM)
        self.res.idle_cpu_ms_per_s = 1000 * (after - before) / seconds

    def fixed_rate(self, rate: float, streams: tuple[bool, ...]) -> None:
        """Direct, platform, direct again: the direct run with the lower p99 is the baseline. One stall
        of the load core during a direct run (a p99 of 133 ms against 2.4 ms, seen) would otherwise
        make the platform's added latency negative and pass the target on noise; the lower baseline
        can only make the added latency larger."""
        for stream in streams:
            label = f"{'stream' if stream else 'non-stream'} {rate:.0f}/s open"
            runs = [self.load(target, stream, label, mode="open", rate=rate, concurrency=32)
                    for target in ("direct", "platform", "direct")]
            self.res.open[("direct", stream, rate)] = min(runs[0], runs[2], key=lambda r: r.p99_ms)
            self.res.open[("platform", stream, rate)] = runs[1]

    def admission(self) -> None:
        """Full path with admission off (a key without limits: no Redis call) and on (a key with every
        limit: one admit and one settle script per request), alternated to spread the machine's noise."""
        for _ in range(2):
            for limited in (False, True):
                label = f"admission {'on' if limited else 'off'} c=16"
                result = self.load("platform", False, label, concurrency=16, limited=limited)
                self.res.admission.setdefault(limited, []).append(result)
        url = self.stack.platform.redis.url
        self.res.admission_cost_us = admission_cost(url, self.stack.tag)
        p50, p99, n = self.res.admission_cost_us
        print(f"  admission round trip (admit script, {n} samples): p50 {p50:.0f} µs  p99 {p99:.0f} µs",
              flush=True)

    def session(self) -> None:
        """Edge -> router calls over the Session against one gRPC call per request, same stack,
        alternated (the edge restarted between), ending with the Session on as it ships."""
        for _ in range(2):
            for on in (False, True):
                self.stack.restart_edge(session=on)
                self.settle()
                for stream in (False, True):
                    label = f"session {'on' if on else 'off'} {'stream' if stream else 'non-stream'}"
                    result = self.load("platform", stream, label, concurrency=16)
                    self.res.session.setdefault((on, stream), []).append(result)

    def chunk_costs(self) -> None:
        """Long answers (164 chunks) at c=16: all at once (the router reads many chunks per network
        read and sends them in one message), and paced 5 ms apart (every chunk its own read and its
        own message: what a model generating in real time costs)."""
        for scenario in ("long", "paced"):
            duration = self.args.duration if scenario == "long" else max(self.args.duration, 6.0)
            self.res.chunks[scenario] = self.load(
                "platform", True, f"stream {scenario} c=16", concurrency=16, duration=duration,
                scenario=scenario,
            )

    def run(self) -> Results:
        self.warm_up()
        self.idle()
        self.admission()
        self.session()
        for repeat in range(self.args.repeat):
            for conc in self.args.concurrency:
                for stream in (False, True):
                    for target in ("direct", "platform"):
                        label = f"{'stream' if stream else 'non-stream'} c={conc}"
                        if self.args.repeat > 1:
                            label += f" #{repeat + 1}"
                        result = self.load(target, stream, label, concurrency=conc)
                        self.res.closed_runs.setdefault((target, stream, conc), []).append(result)
        self.res.pick_medians()
        self.chunk_costs()
        self.fixed_rate(self.args.rate, (False, True))
        capacity = max(r.rps for (t, s, _), r in self.res.closed.items() if t == "platform" and not s)
        if capacity < 1.1 * self.args.rate:  # the stated rate overloads it: also at half its capacity
            self.fixed_rate(max(10.0, round(capacity / 2, -1)), (False,))
        upstream = self.stack.pids()["upstream"]
        _pin_all_threads(upstream, self.args.platform_cpu)  # the platform is idle: the core is free
        try:
            self.res.ceiling = self.load("direct", False, "generator ceiling c=64", concurrency=64)
        finally:
            _pin_all_threads(upstream, self.args.load_cpu)
        return self.res


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per run (default 8)")
    parser.add_argument("--quick", action="store_true", help="2 s per run, shorter warm-ups")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of the closed-loop runs; the targets use each run's median (default 3)")
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop rate (default 300/s)")
    parser.add_argument("--platform-cpu", type=int, default=0, help="core for edge and router")
    parser.add_argument("--load-cpu", type=int, default=1, help="core for generator, upstream, infra")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs) afterwards")
    parser.add_argument("--metering", action="store_true",
                        help="run the metering bench instead (Kafka + chDB: events/s, lag, usage API p99)")
    parser.add_argument("--metering-events", type=int, default=300_000, help="events drained (default 300k)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 2.0
        args.repeat = 1
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.warmup = 0.5 if args.quick else 1.0
    cores = os.sched_getaffinity(0)
    if {args.platform_cpu, args.load_cpu} - cores or args.platform_cpu == args.load_cpu:
        parser.error(f"need two distinct cores among {sorted(cores)}")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    if args.metering:
        from bench.metering import main as metering

        return metering(args.metering_events, args.keep)
    run_dir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    load1, load5, _ = os.getloadavg()
    print(f"Tollgate bench {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}: {args.duration:g} s per run, "
          f"{os.cpu_count()} cores, load average {load1:.2f} / {load5:.2f} before start", flush=True)
    print(f"  core {args.platform_cpu}: edge, router | core {args.load_cpu}: load generator, upstream "
          f"(zero-delay replay), Kafka, PostgreSQL, Redis", flush=True)
    stack = BenchStack(run_dir, args.platform_cpu, args.load_cpu)
    ok, failed = False, False
    try:
        floors = measure_floor(args.platform_cpu, args.duration)
        for f in floors:
            print(f"  transport floor {f.kind:6} {f.calls_per_s:7.0f} calls/s  {f.total_ms:.3f} ms CPU/call "
                  f"(client {f.client_ms:.3f} + server {f.server_ms:.3f})", flush=True)
        stack.start()
        pins = ", ".join(f"{name} {sorted(cpus)}" for name, cpus in stack.affinity().items())
        print(f"  affinity: {pins}", flush=True)
        clients = measure_clients(stack.upstream_port, args.platform_cpu, min(args.duration, 4.0))
        for name, runs in clients.items():
            print(f"  provider client {name:8} {median_cpu_us(runs):6.1f} µs CPU per streamed answer "
                  f"(rounds {' / '.join(f'{r.cpu_us:.0f}' for r in runs)})", flush=True)
        results = Bench(stack, args).run()
        results.floors = floors
        results.provider_clients = clients
        print()
        print(render(results, args.platform_cpu, args.load_cpu))
        ok = True
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
    except Exception:
        failed = True
        print(stack.log_tails(), file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        if failed or args.keep:
            print(f"run folder (logs) kept: {run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if ok else 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
