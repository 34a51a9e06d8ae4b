"""Start and stop the replaying upstream (``tests.upstream.server``) as a child process.

``UpstreamServer`` is a context manager; ``upstream`` is a session fixture built on it. To use the
fixture in a test folder, import it into that folder's conftest (``from tests.upstream.harness import
upstream``). The process is stopped by its PID when the context exits, and waited for, so nothing
outlives the session.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import pytest

from infra.stack.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
OPENAI_FIXTURES = Path(__file__).parent / "fixtures" / "openai"


def recorded_logprobs(scenario: str) -> list[dict[str, Any]]:
    """Every chunk's ``logprobs.content`` entries of a chat stream fixture, straight from the recording."""
    entries: list[dict[str, Any]] = []
    for line in (OPENAI_FIXTURES / f"chat-{scenario}.sse").read_text().splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line.removeprefix("data: "))["choices"]:
                entries += (choice.get("logprobs") or {}).get("content") or []
    return entries


def recorded_completion_logprobs(scenario: str) -> tuple[str, dict[str, list[Any]]]:
    """A legacy completion stream fixture's text and its chunks' ``logprobs`` lists joined, straight
    from the recording: what a whole answer from it holds."""
    text, joined = "", {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for line in (OPENAI_FIXTURES / f"completion-{scenario}.sse").read_text().splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line.removeprefix("data: "))["choices"]:
                text += choice["text"]
                for name, values in (choice.get("logprobs") or {}).items():
                    joined[name] += values
    return text, joined


def recorded_embeddings(scenario: str) -> list[bytes]:
    """The vectors an ``/v1/embeddings`` scenario answers, as little-endian float32 bytes, read
    straight from the recording (base64 or numbers, as it holds them)."""
    body = json.loads((OPENAI_FIXTURES / f"embeddings-{scenario}.json").read_text())["body"]
    return [base64.b64decode(d["embedding"]) if isinstance(d["embedding"], str)
            else struct.pack(f"<{len(d['embedding'])}f", *d["embedding"]) for d in body["data"]]


class UpstreamServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def openai_base_url(self) -> str:
        """What an OpenAI SDK (and ``OpenAICompatBackend``) takes: the version prefix included."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """What Anthropic's SDK (and ``AnthropicBackend``) takes: the host only."""
        return self.base_url

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.upstream.server", "--port", str(self.port)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self._log,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                output = self.log()
                self.stop()
                raise RuntimeError(f"upstream exited at start: {output}")
            try:
                httpx.get(self.base_url + "/_stats", timeout=0.5).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        output = self.log()
        self.stop()
        raise RuntimeError(f"upstream did not start within {START_TIMEOUT}s: {output}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        elif proc is not None:
            proc.wait()
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def log(self) -> str:
        """What the server wrote to stderr (uvicorn's errors), for failure messages."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def stats(self) -> dict[str, Any]:
        response = httpx.get(self.base_url + "/_stats", timeout=5)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def model_stats(self, model: str) -> dict[str, int]:
        """Counts for one (tagged) model: requests, completed, disconnects."""
        counts: dict[str, int] = self.stats()["per_model"].get(model, {"requests": 0, "completed": 0,
                                                                       "disconnects": 0, "in_flight": 0, "max_in_flight": 0})
        return counts

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        """What the upstream received for this model: path, auth present, stream_options, body."""
        return [r for r in self.stats()["requests"] if r["model"] == model]

    def reset(self) -> None:
        httpx.post(self.base_url + "/_reset", timeout=5).raise_for_status()

    def __enter__(self) -> UpstreamServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as server:
        yield server
