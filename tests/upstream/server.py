"""A real HTTP upstream that replays recorded OpenAI and Anthropic wire traffic, for tests and benchmarks.

Why a real server: the behaviours that matter (a stream cut mid-body, a client that goes away, a
timeout before the first byte, chunked SSE framing) only exist on a real socket; a mocked transport
would agree with whatever the client code assumes.

The request's ``model`` picks the scenario: ``"<scenario>"`` or ``"<scenario>:<anything>"`` (the tail
lets a test tag its own requests and find them in ``/_stats`` without resetting shared counters).
Unknown scenarios answer as the provider does for an unknown model (404).

It runs in its own process (``python -m tests.upstream.server --port N``) so that a benchmark
measures the platform rather than a replay loop sharing its GIL; ``UpstreamServer`` starts and stops
it. Requests are answered from memory: fixtures are read once at start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

FIXTURES = Path(__file__).parent / "fixtures"
SLOW_SECONDS = 5.0  # "slow": longer than any client timeout a test sets, short enough to never hang
STREAM_GAP_SECONDS = 0.05  # "slow-stream": one event every 50 ms
QUIET_SECONDS = 1.5  # "quiet": a model thinking, silent between events (long enough for keep-alives)
PACED_GAP_SECONDS = 0.005  # "paced": a long answer at 200 events/s, each event its own network write
MAX_RECORDS = 1000  # request log cap, so a benchmark run does not grow memory without bound
_CALL_ID = re.compile(rb'"id":"call_[A-Za-z0-9]+",')
HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive", "date"}


@dataclass(frozen=True)
class Scenario:
    fixture: str  # stem: "<provider>/<kind>-<stem>.sse" for a stream, "<provider>/<stem>.json" otherwise
    delay_before: float = 0.0  # before the status line
    delay_between: float = 0.0  # between two events
    pauses: tuple[tuple[int, float], ...] = ()  # (event index, seconds): a silence before that event
    cut_after: int | None = None  # events sent before the connection is dropped without an end
    one_write: bool = False  # the whole body in one network write: a reader gets many events per read
    without_call_ids: bool = False  # tool calls' "id" fields removed, as some compatible servers send them


_COMMON = {
    "ok": Scenario("ok"),
    "slow": Scenario("ok", delay_before=SLOW_SECONDS),
    "slow-stream": Scenario("long", delay_between=STREAM_GAP_SECONDS),
    "long": Scenario("long"),  # the benchmark's many-chunk answer, as fast as the socket takes it
    "long-one-write": Scenario("long", one_write=True),
    "paced": Scenario("long", delay_between=PACED_GAP_SECONDS),
    # headers at once, then silence before the first event and again before the fourth (a thinking model)
    "quiet": Scenario("ok", pauses=((0, QUIET_SECONDS), (3, QUIET_SECONDS))),
    "slow-rate-limited": Scenario("rate-limited", delay_before=QUIET_SECONDS),
    "error-mid-stream": Scenario("error-mid-stream"),
    "rate-limited": Scenario("rate-limited"),
    "server-error": Scenario("server-error"),
    "context-too-long": Scenario("context-too-long"),
    "bad-request": Scenario("bad-request"),
    "unauthorized": Scenario("unauthorized"),
}
SCENARIOS: dict[str, dict[str, Scenario]] = {
    "openai": {
        **_COMMON,
        "ok-no-usage": Scenario("ok-no-usage"),
        "reasoning": Scenario("reasoning"),
        "reasoning-text": Scenario("reasoning-text"),  # vLLM's reasoning parser: `reasoning`, then content
        # chat: logprobs: true, top_logprobs: 3 (written from OpenAI's chunk format), "Paris." in two
        # chunks; completion: echo: true, logprobs: 2 (written from vLLM's), the prompt with its
        # tokens' logprobs (the first null), then " Paris." in two chunks
        "logprobs": Scenario("logprobs"),
        "tool-calls": Scenario("tool-calls"),
        "tool-calls-no-id": Scenario("tool-calls", without_call_ids=True),
        "cut-mid-stream": Scenario("ok", cut_after=4),  # the role chunk, then 3 content chunks
        # vLLM's stream_options.continuous_usage_stats: usage on every chunk. Written from vLLM's chunk
        # format (no vLLM server to record from here), with chat-ok's text and counts.
        "continuous-usage": Scenario("continuous-usage"),
        "continuous-usage-cut": Scenario("continuous-usage", cut_after=4),
        "continuous-usage-slow": Scenario("continuous-usage", delay_between=STREAM_GAP_SECONDS),
        # /v1/embeddings (written from OpenAI's answer format, vectors made up): "ok" is one base64
        # vector of 1,536 dimensions, "two" two of 256, "floats" one of 64 as numbers, as a server that
        # ignores encoding_format answers
        "two": Scenario("two"),
        "floats": Scenario("floats"),
    },
    "anthropic": {
        **_COMMON,
        "tool-use": Scenario("tool-use"),
        "stop-sequence": Scenario("stop-sequence"),  # ended by one of the request's stop_sequences
        "refusal": Scenario("refusal"),  # the model declined (stop_reason "refusal")
        # structured outputs (output_config.format, written from Anthropic's stream format): the JSON
        # answer in three text deltas, split inside its keys and values
        "structured": Scenario("structured"),
        # extended thinking: a thinking block (signed), a redacted one, then the text
        "thinking": Scenario("thinking"),
        "thinking-one-write": Scenario("thinking", one_write=True),  # all of it in one network read
        "overloaded": Scenario("overloaded"),
        # message_start, content_block_start, ping, then 3 text deltas
        "quiet": Scenario("ok", pauses=((0, QUIET_SECONDS), (5, QUIET_SECONDS))),  # the second after 2 deltas
        "cut-mid-stream": Scenario("ok", cut_after=6),
    },
}
# endpoints that count a request's prompt: a scenario without an answer of its own (a recorded error)
# gets the "ok" count
COUNTS = ("tokenize", "input-tokens")
ENDPOINTS = {
    "/v1/chat/completions": ("openai", "chat"),
    "/v1/completions": ("openai", "completion"),
    "/v1/messages": ("anthropic", "messages"),
    "/v1/messages/count_tokens": ("anthropic", "count-tokens"),  # a JSON answer, not a stream
    "/tokenize": ("openai", "tokenize"),  # vLLM's, at the server's root; a JSON answer
    # OpenAI's count of a Responses input (written from its answer format); a JSON answer
    "/v1/responses/input_tokens": ("openai", "input-tokens"),
    "/v1/embeddings": ("openai", "embeddings"),  # a JSON answer
}


def load_fixtures(root: Path = FIXTURES) -> dict[str, Any]:
    """Every fixture in memory: ``.sse`` as a list of events (bytes, framing included), ``.json`` as
    recorded status/headers/body."""
    loaded: dict[str, Any] = {}
    for path in sorted(root.glob("*/*")):
        key = f"{path.parent.name}/{path.stem}"
        if path.suffix == ".sse":
            raw = path.read_text(encoding="utf-8")
            loaded[key] = [(event + "\n\n").encode() for event in raw.split("\n\n") if event.strip()]
        elif path.suffix == ".json":
            loaded[key] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


class Stats:
    """What the upstream saw. Never the credential itself, only whether one came."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.records: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self.per_model: dict[str, dict[str, int]] = {}
        self.total = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.disconnects = 0

    def begin(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.total += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        counts = self.per_model.setdefault(
            record["model"], {"requests": 0, "disconnects": 0, "completed": 0, "in_flight": 0, "max_in_flight": 0}
        )
        counts["requests"] += 1
        counts["in_flight"] += 1
        counts["max_in_flight"] = max(counts["max_in_flight"], counts["in_flight"])

    def end(self, model: str, *, completed: bool, disconnected: bool) -> None:
        self.in_flight -= 1
        counts = self.per_model[model]
        counts["in_flight"] -= 1
        counts["completed"] += int(completed)
        if disconnected:
            counts["disconnects"] += 1
            self.disconnects += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total, "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
            "disconnects": self.disconnects, "per_model": self.per_model, "requests": list(self.records),
        }


async def _disconnected_within(event: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


class Replay(Response):
    """Plays one recorded answer onto the socket, watching for the client going away meanwhile.

    Hand-written rather than a ``StreamingResponse`` because the point is to *observe* the
    disconnect (and count it), and to drop the connection on purpose for ``cut-mid-stream``.
    """

    def __init__(
        self, stats: Stats, model: str, status: int, headers: dict[str, str], chunks: list[bytes],
        scenario: Scenario,
    ) -> None:
        super().__init__(status_code=status)
        self._stats, self._model, self._chunks, self._scenario = stats, model, chunks, scenario
        self._raw = [(k.lower().encode(), v.encode()) for k, v in headers.items() if k.lower() not in HOP_BY_HOP]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        completed = False
        sc = self._scenario
        try:
            if sc.delay_before and await _disconnected_within(gone, sc.delay_before):
                return
            await send({"type": "http.response.start", "status": self.status_code, "headers": self._raw})
            chunks = [b"".join(self._chunks)] if sc.one_write else self._chunks
            pauses = dict(sc.pauses)
            for index, chunk in enumerate(chunks):
                if index in pauses and await _disconnected_within(gone, pauses[index]):
                    return
                if sc.cut_after is not None and index == sc.cut_after:
                    return  # no final empty chunk: uvicorn closes the socket mid-body
                if index and sc.delay_between and await _disconnected_within(gone, sc.delay_between):
                    return
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            completed = True
        finally:
            watcher.cancel()
            self._stats.end(self._model, completed=completed, disconnected=gone.is_set() and not completed)


def build_app(fixtures: dict[str, Any] | None = None) -> Starlette:
    data = fixtures if fixtures is not None else load_fixtures()
    stats = Stats()

    async def generate(request: Request) -> Response:
        provider, kind = ENDPOINTS[request.url.path]
        try:
            body = await request.json()
        except ValueError:
            body = {}
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        auth = request.headers.get("authorization", "").startswith("Bearer ") or "x-api-key" in request.headers
        stats.begin({
            "path": request.url.path, "model": model, "auth": auth,
            "stream_options": body.get("stream_options") if isinstance(body, dict) else None,
            "body": body, "headers": sorted(request.headers.keys()),
        })
        scenario = SCENARIOS[provider].get(model.split(":", 1)[0], Scenario("model-not-found"))
        answer = data.get(f"{provider}/{kind}-{scenario.fixture}")
        if answer is None and kind in COUNTS and f"{provider}/{scenario.fixture}" not in data:
            answer = data.get(f"{provider}/{kind}-ok")  # a count does not depend on how the answer streams
        stream = answer if isinstance(answer, list) else None  # .sse; a .json is a whole recorded answer
        if stream is not None and scenario.without_call_ids:
            stream = [_CALL_ID.sub(b"", event) for event in stream]
        if stream is not None:
            headers = data[f"{provider}/headers"]
            return Replay(stats, model, 200, headers, stream, scenario)
        recorded = (
            answer if isinstance(answer, dict)
            else data.get(f"{provider}/{scenario.fixture}") or data[f"{provider}/model-not-found"]
        )
        # as recorded: OpenAI pretty-prints its error bodies, Anthropic sends them compact
        indent = 4 if provider == "openai" else None
        separators = None if indent else (",", ":")
        content = json.dumps(recorded["body"], indent=indent, separators=separators).encode()
        return Replay(stats, model, recorded["status"], recorded["headers"], [content], scenario)

    async def models(request: Request) -> Response:
        if "anthropic-version" in request.headers:
            return JSONResponse({"data": [{"type": "model", "id": "claude-sonnet-4-20250514",
                                           "display_name": "Claude Sonnet 4", "created_at": "2025-05-22T00:00:00Z"}],
                                 "has_more": False, "first_id": "claude-sonnet-4-20250514",
                                 "last_id": "claude-sonnet-4-20250514"})
        return JSONResponse({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model",
                                                         "created": 1721172741, "owned_by": "system"}]})

    async def get_stats(request: Request) -> Response:
        return JSONResponse(stats.as_json())

    async def reset(request: Request) -> Response:
        stats.reset()
        return JSONResponse({"ok": True})

    routes = [Route(path, generate, methods=["POST"]) for path in ENDPOINTS]
    routes += [
        Route("/v1/models", models, methods=["GET"]),
        Route("/_stats", get_stats, methods=["GET"]),
        Route("/_reset", reset, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser(description="Replay recorded provider traffic on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    uvicorn.run(
        build_app(), host=args.host, port=args.port, log_level="warning", access_log=False,
        lifespan="off", server_header=False, timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
