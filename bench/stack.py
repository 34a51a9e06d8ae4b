"""What the bench starts and stops: Kafka + PostgreSQL + Redis (no Triton), the replaying upstream on
the load core, router and edge pinned to the platform core, one API key and one model on the bus.

Pinning: the bench process pins itself to the load core before it starts anything, so everything it
starts inherits that core; router and edge are started under ``taskset -c <platform core>``. Every
process is stopped by its PID (process group), in reverse order, also on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.admission_cost import ALL_LIMITS
from infra.stack.paths import REPO_ROOT
from infra.stack.platform import Platform, PlatformConfig, Ports
from infra.stack.ports import free_port
from infra.stack.process import ManagedProcess, StackError, wait_until
from services.common.api_keys import display_prefix, generate_key, hash_key
from services.common.events.catalog import CatalogEventV1, DeploymentEntry, ModelEntry, PriceEntry
from services.common.events.keys import KeyEventV1, Limits
from services.common.kafka.producer import EventProducer
from services.common.settings import ServiceSettings

PLATFORM_SERVICES = ("router", "edge")  # the full path: edge -> router -> upstream
SCENARIOS = ("ok", "long", "paced")  # upstream answers: 12 chunks; 164 at once; 164 paced 5 ms apart


class _ClientSettings(ServiceSettings):
    http_port: int = 0


def pin(pid: int, cpu: int) -> None:
    os.sched_setaffinity(pid, {cpu})


def session_counts(edge_port: int) -> dict[str, float]:
    """The edge's Session counters (messages and frames each way), from its /metrics."""
    counts: dict[str, float] = {}
    url = f"http://127.0.0.1:{edge_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("tollgate_router_session_") and "_total{" in line:
                name, value = line.rsplit(" ", 1)
                counts[name] = float(value)
    return counts


def frames_per_message(before: dict[str, float], after: dict[str, float]) -> str:
    """``to router x.xx, from router y.yy`` frames per Session message between two readings."""
    def ratio(direction: str) -> float:
        def delta(kind: str) -> float:
            name = f'tollgate_router_session_{kind}_total{{direction="{direction}"}}'
            return after.get(name, 0.0) - before.get(name, 0.0)
        return delta("frames") / max(delta("messages"), 1.0)
    return f"to router {ratio('to_router'):.2f}, from router {ratio('from_router'):.2f}"


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - loopback URL we built
            return bool(reply.status == 200)
    except OSError:
        return False


class BenchStack:
    def __init__(self, run_dir: Path, platform_cpu: int, load_cpu: int) -> None:
        self.run_dir = run_dir
        self.platform_cpu, self.load_cpu = platform_cpu, load_cpu
        self.platform = Platform(PlatformConfig(run_dir=run_dir, ports=Ports.free(), topic_prefix="bench."))
        for name in PLATFORM_SERVICES:  # same process, same environment, run under taskset
            service = self.platform.services[name]
            service.proc = dataclasses.replace(
                service.proc, argv=["taskset", "-c", str(platform_cpu), *service.proc.argv]
            )
        self.upstream_port = free_port()
        self.upstream = ManagedProcess(
            name="upstream",
            argv=["taskset", "-c", str(load_cpu), sys.executable, "-m", "tests.upstream.server",
                  "--port", str(self.upstream_port)],
            log_path=run_dir / "logs" / "upstream.log", pid_path=run_dir / "pids" / "upstream.pid",
            env={"PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT,
        )
        self.tag = uuid.uuid4().hex[:6]
        self.model = f"bench-ok-{self.tag}"  # the short answer (12 chunks), zero delay
        self.secret = generate_key()  # no limits: admission makes no Redis call
        self.limited_secret = generate_key()  # every limit set (high): the full admission script
        self.started: list[str] = []

    def model_for(self, scenario: str) -> str:
        """The catalog model whose one deployment replays ``scenario`` (see tests/upstream/server.py)."""
        return self.model if scenario == "ok" else f"bench-{scenario}-{self.tag}"

    @property
    def edge_port(self) -> int:
        return self.platform.config.ports.edge

    def pids(self) -> dict[str, int]:
        """The processes whose CPU time the bench reports."""
        pids = {name: self.platform.services[name].proc.pid for name in PLATFORM_SERVICES}
        pids["upstream"] = self.upstream.pid
        return {name: pid for name, pid in pids.items() if pid is not None}

    def start(self, log: bool = True) -> None:
        def say(what: str) -> None:
            if log:
                print(f"  {what}", flush=True)

        began = time.monotonic()
        pin(0, self.load_cpu)  # everything started from here on inherits the load core
        self.started.append("infrastructure")
        self.platform.start_infrastructure(with_triton=False)
        say(f"Kafka, PostgreSQL, Redis ready ({time.monotonic() - began:.1f}s)")
        self.platform.migrate()
        say(f"migrations, topics, catalog seed done ({time.monotonic() - began:.1f}s)")
        self.started.append("upstream")
        self.upstream.start()
        for name in PLATFORM_SERVICES:
            self.started.append(name)
            self.platform.services[name].start()
        wait_until(lambda: _http_ok(f"http://127.0.0.1:{self.upstream_port}/_stats"), 20, "upstream")
        for name in PLATFORM_SERVICES:
            self.platform.services[name].wait_ready()
        say(f"upstream, router, edge ready ({time.monotonic() - began:.1f}s)")
        asyncio.run(self._publish())
        say(f"key and model {self.model} published and visible to the edge ({time.monotonic() - began:.1f}s)")

    def restart_edge(self, session: bool) -> None:
        """The edge again, with its router Session on or off (EDGE_ROUTER_SESSION), same core."""
        edge = self.platform.services["edge"]
        edge.stop()
        env = {**edge.proc.env, "EDGE_ROUTER_SESSION": "true" if session else "false"}
        edge.proc = dataclasses.replace(edge.proc, env=env, pid=None, returncode=None, _popen=None)
        edge.start()
        edge.wait_ready()
        self._wait_visible()

    def affinity(self) -> dict[str, set[int]]:
        return {name: os.sched_getaffinity(pid) for name, pid in self.pids().items()}

    async def _publish(self) -> None:
        platform = self.platform
        settings = _ClientSettings(
            kafka_bootstrap=platform.bus.bootstrap, topic_prefix=platform.config.topic_prefix
        )
        producer = EventProducer(settings, client_id="bench")
        await producer.start()
        now = datetime.now(UTC)
        try:
            for key_id, secret, limits in (
                (f"key_bench_{self.tag}", self.secret, Limits()),
                (f"key_bench_limited_{self.tag}", self.limited_secret, ALL_LIMITS),
            ):
                await producer.publish("keys.v1", key_id, KeyEventV1(
                    key_id=key_id, version=1, account_id=f"acct_bench_{self.tag}", plan_id="plan_bench",
                    key_hash=hash_key(secret, platform.key_hash_secret), prefix=display_prefix(secret),
                    name="bench", status="active", account_status="active", billing="invoice",
                    limits=limits, updated_at=now,
                ))
            upstream = f"http://127.0.0.1:{self.upstream_port}/v1"
            entities: list[ModelEntry | DeploymentEntry | PriceEntry] = []
            for scenario in SCENARIOS:
                model = self.model_for(scenario)
                entities += [
                    ModelEntry(id=model, display_name=model, context_length=8192, max_output_tokens=1024),
                    DeploymentEntry(id=f"{model}-dep", model_id=model, backend="openai",
                                    endpoint=upstream, upstream_model=f"{scenario}:{model}"),
                    PriceEntry(id=f"{model}-price", model_id=model, effective_from=now - timedelta(days=1),
                               input_micros_per_mtok=150_000, cached_input_micros_per_mtok=75_000,
                               cache_write_micros_per_mtok=0, output_micros_per_mtok=600_000),
                ]
            for entity in entities:
                event = CatalogEventV1(version=1, entity=entity, updated_at=now)
                await producer.publish("catalog.v1", event.record_key, event)
        finally:
            await producer.stop()
        await asyncio.to_thread(self._wait_visible)

    def _wait_visible(self) -> None:
        """The edge lists the model for this key (keys.v1 and catalog.v1 both applied)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.edge_port}/v1/models", headers={"authorization": f"Bearer {self.secret}"}
        )

        def visible() -> bool:
            with urllib.request.urlopen(request, timeout=2) as reply:  # noqa: S310 - loopback URL we built
                listed = reply.read()
                return reply.status == 200 and all(self.model_for(s).encode() in listed for s in SCENARIOS)

        wait_until(visible, 30, "key and model on the edge")

    def stop(self) -> None:
        """Reverse order, each by PID; whatever fails to stop is reported, the rest still stops."""
        failures: list[str] = []
        for name in reversed(self.started):
            try:
                if name == "infrastructure":
                    for server in reversed(self.platform.infrastructure()[:-1]):  # no Triton
                        server.stop()
                    self.platform.postgres.remove_data()  # may live outside the run folder (root)
                elif name == "upstream":
                    self.upstream.stop(timeout=10)
                else:
                    self.platform.services[name].stop(timeout=15)
            except (StackError, OSError) as exc:
                failures.append(f"{name}: {exc}")
        self.started.clear()
        if failures:
            print("could not stop: " + "; ".join(failures), file=sys.stderr)

    def log_tails(self) -> str:
        services = self.platform.services
        parts = [f"--- {name} ---\n{services[name].proc.log_tail()}" for name in PLATFORM_SERVICES]
        return "\n".join([*parts, f"--- upstream ---\n{self.upstream.log_tail()}"])
