"""The five Tollgate services as child processes, configured only through their environment."""

from __future__ import annotations

import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra.stack.paths import REPO_ROOT
from infra.stack.process import ManagedProcess, StackError, wait_until

SERVICES = ("catalog", "billing", "metering", "router", "edge")


@dataclass
class ServiceProcess:
    name: str
    http_port: int
    env: dict[str, str]
    run_dir: Path

    def __post_init__(self) -> None:
        self.proc = ManagedProcess(
            name=self.name,
            argv=[sys.executable, "-m", f"services.{self.name}"],
            log_path=self.run_dir / "logs" / f"{self.name}.log",
            pid_path=self.run_dir / "pids" / f"{self.name}.pid",
            env=self.env,
            cwd=REPO_ROOT,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> int:
        return self.proc.start()

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=3) as reply:  # noqa: S310
                return bool(reply.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        def check() -> bool:
            if self.proc.exited():
                raise StackError(f"{self.name} exited:\n{self.proc.log_tail()}")
            return self.ready()

        started = time.monotonic()
        try:
            wait_until(check, timeout, f"service {self.name}", interval=0.2)
        except StackError as exc:
            raise StackError(f"{exc}\n--- {self.name} log ---\n{self.proc.log_tail()}") from exc
        self.ready_seconds = time.monotonic() - started

    def stop(self, timeout: float = 30.0) -> None:
        self.proc.stop(timeout)
