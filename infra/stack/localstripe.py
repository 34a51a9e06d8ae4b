"""localstripe: the stand-in for Stripe's API on ``make run`` and in tests.

Run through ``infra.stack.localstripe_main`` (127.0.0.1 only, its store pickled into the run folder).
localstripe keeps webhook endpoints in memory only, so every start registers ours again: Stripe's
signed events go to the edge's public ``/v1/webhooks/stripe``, exactly the path production uses.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from infra.stack.paths import REPO_ROOT
from infra.stack.process import ManagedProcess, StackError, wait_until

WEBHOOK_ENDPOINT_ID = "tollgate"
API_KEY = "sk_test_tollgate_localstripe"  # localstripe accepts any sk_ key; a fixed one names it in logs


class LocalstripeServer:
    def __init__(self, run_dir: Path, port: int, webhook_url: str, webhook_secret: str) -> None:
        self.port = port
        self.api_key = API_KEY
        self._webhook_url = webhook_url
        self._webhook_secret = webhook_secret
        self._proc = ManagedProcess(
            name="localstripe",
            argv=[sys.executable, "-m", "infra.stack.localstripe_main", "--port", str(port),
                  "--store", str(run_dir / "localstripe" / "localstripe.pickle")],
            log_path=run_dir / "logs" / "localstripe.log",
            pid_path=run_dir / "pids" / "localstripe.pid",
            cwd=REPO_ROOT,
            env={"PYTHONPATH": str(REPO_ROOT)},
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._proc.start()

    def _post(self, path: str, form: dict[str, str]) -> int:
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST")  # noqa: S310
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        with urllib.request.urlopen(request, timeout=3) as reply:  # noqa: S310 - our own loopback server
            return int(reply.status)

    def register_webhook(self) -> None:
        """Point localstripe's signed events at the edge (in memory there: redone on every start)."""
        self._post(f"/_config/webhooks/{WEBHOOK_ENDPOINT_ID}",
                   {"url": self._webhook_url, "secret": self._webhook_secret})

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if self._proc.exited():
                raise StackError(f"localstripe exited:\n{self._proc.log_tail()}")
            request = urllib.request.Request(self.url + "/v1/events?limit=1")  # noqa: S310
            request.add_header("Authorization", f"Bearer {self.api_key}")
            with urllib.request.urlopen(request, timeout=1) as reply:  # noqa: S310 - our loopback server
                return reply.status == 200 and "data" in json.loads(reply.read())

        wait_until(ready, timeout, f"localstripe on port {self.port}")
        self.register_webhook()

    def stop(self) -> None:
        self._proc.stop(timeout=10.0)
