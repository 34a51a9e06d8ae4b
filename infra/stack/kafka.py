"""Apache Kafka (KRaft, one combined broker+controller node): the broker production uses, run for real.

Tansu is lighter but cannot prove what Tollgate promises (compacted ``keys.v1``/``catalog.v1``,
idempotent producers, durability across restarts), so tests and ``make run`` start this. The jars come
from Maven Central through ``infra/kafka/pom.xml`` into the shared cache once; the data dir lives in the
run folder and survives restarts (storage is formatted only the first time).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from infra.stack.kafka_probe import metadata_ready
from infra.stack.paths import REPO_ROOT, cache_dir
from infra.stack.ports import port_open
from infra.stack.process import ManagedProcess, StackError, rss_bytes

KAFKA_DIR = REPO_ROOT / "infra" / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J2_CONFIG = KAFKA_DIR / "log4j2.yaml"

# Heap is modest on purpose: many servers share 2 cores and 24 GiB. SerialGC: one small heap, no
# concurrent GC threads competing with the other servers for the two cores. TieredStopAtLevel=1 (C1
# only) cut the CPU a start burns from ~4.2 s to ~3.0 s and RSS by ~25 MiB (measured with
# infra/kafka/measure.py, 2 cores); the peak throughput C2 would add is irrelevant for dev and tests.
JVM_FLAGS: tuple[str, ...] = (
    "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
)


def kafka_version() -> str:
    """The Kafka version pinned in the pom, so there is exactly one place to bump it."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise StackError(f"no <kafka.version> in {POM}")
    return match.group(1).strip()


def owned_pid(process: ManagedProcess, marker: str) -> int | None:
    """The PID in ``process``'s PID file, but only if that process's command line contains ``marker``.

    After a reboot a stale PID file may name an unrelated process; adopting it would hand out a dead
    bootstrap address, and stopping it would SIGTERM someone else's process group.
    """
    pid = process.running_pid()
    if pid is None:
        return None
    try:
        if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    except OSError:
        pass
    process.pid_path.unlink(missing_ok=True)
    return None


def _cluster_id() -> str:
    """A Kafka cluster id (base64url of 16 random bytes); never starting with '-' (argv-safe)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


class KafkaServer:
    """One KRaft node under ``run_dir/kafka``: config, data, log and PID file all live there."""

    def __init__(self, run_dir: Path, port: int, controller_port: int) -> None:
        self.dir = run_dir / "kafka"
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "server.properties"
        self.port = port
        self.controller_port = controller_port
        self.process = ManagedProcess(
            name="kafka",
            argv=[],  # filled in by start(), once the jars are known
            log_path=self.dir / "kafka.log",
            pid_path=self.dir / "kafka.pid",
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process.pid is not None else owned_pid(self.process, self._marker)

    @property
    def _marker(self) -> str:
        return str(self.config_path)

    @classmethod
    def ensure_jars(cls) -> Path:
        """Download the broker jars once into the shared cache; a warm call costs a file read.

        The stamp holds a hash of the pom, so editing it (a new version, another log binding)
        re-downloads. A file lock serialises parallel runs; jars land in a temp dir and are renamed
        into place, so nobody ever sees a half-copied classpath.
        """
        root = cache_dir() / "kafka" / kafka_version()
        jars, stamp = root / "jars", root / "jars.stamp"
        want = hashlib.sha256(POM.read_bytes()).hexdigest()

        def warm() -> bool:
            return jars.is_dir() and stamp.is_file() and stamp.read_text().strip() == want

        if warm():
            return jars
        root.mkdir(parents=True, exist_ok=True)
        with (root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if warm():
                return jars
            tmp = root / f"jars.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            argv = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                    f"-DoutputDirectory={tmp}"]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise StackError(f"mvn could not fetch Kafka jars:\n{(done.stdout + done.stderr)[-3000:]}")
            shutil.rmtree(jars, ignore_errors=True)
            tmp.rename(jars)
            stamp.write_text(want)
        return jars

    def _java(self, jars: Path, main: str, *args: str) -> list[str]:
        return ["java", *JVM_FLAGS, f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
                "-cp", f"{jars}/*", main, *args]

    def _write_config(self) -> None:
        """server.properties for a single-node dev/test cluster that still behaves like production."""
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # one node: every internal topic must accept a single replica
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # topics are declared in infra/topics.yaml; a typo must fail, not create a stray topic
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            # the cleaner wakes every 15 s by default; 1 s lets a test see compaction in seconds.
            # Its dedupe buffer defaults to 128 MiB of a 512 MiB heap; 16 MiB covers millions of keys.
            "log.cleaner.backoff.ms": "1000",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            # two cores: Kafka's thread defaults (8 io, 3 network) only add context switches here
            "num.io.threads": "4",
            "num.network.threads": "2",
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _port_from_config(self) -> None:
        """On reuse, the live broker's real ports win over the ones we were constructed with."""
        text = self.config_path.read_text() if self.config_path.is_file() else ""
        pattern = r"^listeners=PLAINTEXT://[^:]+:(\d+),CONTROLLER://[^:]+:(\d+)$"
        if m := re.search(pattern, text, re.MULTILINE):
            self.port, self.controller_port = int(m.group(1)), int(m.group(2))

    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()

    def start(self) -> int:
        """Start the broker (or adopt the live one named by the PID file); return its PID."""
        existing = owned_pid(self.process, self._marker)
        if existing is not None:
            self._port_from_config()
            self.process.pid = existing
            return existing
        jars = self.ensure_jars()
        self.format_storage()
        self.process.argv = self._java(jars, "kafka.Kafka", str(self.config_path))
        return self.process.start()

    def format_storage(self) -> bool:
        """Write server.properties and format the data dir unless it already is; True if it formatted.

        Formatting is what makes a KRaft node: doing it again on existing data would be refused (or,
        forced, would orphan the data), so an existing meta.properties means "reuse, keep the data".
        """
        self._write_config()
        if self.formatted():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = self._java(self.ensure_jars(), "kafka.tools.StorageTool", "format",
                          "-t", _cluster_id(), "-c", str(self.config_path))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0 or not self.formatted():
            raise StackError(f"kafka storage format failed:\n{(done.stdout + done.stderr)[-3000:]}")
        return True

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the broker serves metadata; fail fast (with the log) if the JVM died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.exited() and self.pid is None:
                raise StackError(f"kafka exited during startup:\n{self.process.log_tail()}")
            try:
                if port_open(self.port) and metadata_ready("127.0.0.1", self.port):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise StackError(f"kafka not ready after {timeout:.0f}s:\n{self.process.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM by PID: a controlled shutdown flushes and closes logs cleanly (about a second)."""
        self.process.pid = self.pid
        self.process.stop(timeout=timeout)

    def rss(self) -> int:
        pid = self.pid
        return rss_bytes(pid) if pid is not None else 0
