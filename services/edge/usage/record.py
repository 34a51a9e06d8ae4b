"""What the edge learns about one admitted request while serving it, and the usage.v1 event it makes.

The request flow feeds it every router message (``observe``) and every failure (``fail``); the
response's ``finally`` closes it exactly once. The status is decided from what was seen:

| seen                                        | status                  | tokens           |
|---------------------------------------------|-------------------------|------------------|
| a Finish, not an error                      | ``ok``                  | the Finish's     |
| a Finish with ``finish_reason = error``     | ``error``               | the Finish's     |
| an error before any output                  | ``error``               | zero (*)         |
| an error after output began, no Finish      | ``error``               | the running ones |
| the client left (nothing else), any time    | ``client_disconnected`` | the running ones |

The running usage is the router's account of the call the edge stopped, else the last delta's
count; (*) a call stopped by an error before any output (its deadline) has its account too.

The router's account (``observe_stopped``) is what it sends for a call the edge stopped, once the
generation behind it has stopped: exact where the edge's view is not (output produced after the last
delta the edge read, a prompt the backend had read before any text, a non-streamed answer the client
left). The one-call RPCs have none; the last delta is then the best the edge knows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.common.errors import TollgateError
from services.common.events.usage import Api, TokenCounts, UsageEventV1, UsageStatus
from tollgate.router.v1 import router_pb2


@dataclass
class RequestRecord:
    request_id: str
    account_id: str
    key_id: str
    api: Api
    model_requested: str
    model_id: str
    price_version: str | None
    streamed: bool
    edge_id: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    first_byte: float | None = None
    deployment_id: str = ""
    provider: str = ""
    running: router_pb2.Delta | None = None  # the last delta: its running token counts
    finish: router_pb2.Finish | None = None
    stopped: router_pb2.Finish | None = None  # the router's account of the call the edge stopped
    error: TollgateError | None = None

    def observe(self, message: router_pb2.GenerateResponse) -> None:
        if message.WhichOneof("event") == "delta":
            if self.first_byte is None:
                self.first_byte = time.monotonic()
                self.deployment_id, self.provider = message.delta.deployment_id, message.delta.provider
            self.running = message.delta
        else:
            self.finish = message.finish

    def observe_whole(self, finish: router_pb2.Finish) -> None:
        """A non-streamed answer: its first byte is the whole answer (``ttft_ms`` is the time to it)."""
        self.first_byte = time.monotonic()
        self.deployment_id, self.provider = finish.deployment_id, finish.provider
        self.finish = finish

    def observe_stopped(self, account: router_pb2.Finish) -> None:
        """The router's account of the stopped call. Its status stays what the edge saw (the client
        left, or the error that stopped it); a call that had finished meanwhile says so with its own
        Finish, whose usage is the whole answer's."""
        self.stopped = account
        if not self.deployment_id:
            self.deployment_id, self.provider = account.deployment_id, account.provider

    def fail(self, exc: TollgateError) -> None:
        if self.error is None:
            self.error = exc

    @property
    def output_started(self) -> bool:
        return self.first_byte is not None

    @property
    def used_anything(self) -> bool:
        """The router's account of the stopped call has tokens in it: the backend did some work."""
        usage = self.stopped.usage if self.stopped is not None else None
        return usage is not None and (
            usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
            + usage.output_tokens > 0
        )

    def settled_usage(self) -> router_pb2.Usage | None:
        """The usage known in full, prompt included: the Finish's, or the router's account of a
        stopped call whose prompt the backend had counted (else None: see ``running_usage``)."""
        if self.finish is not None:
            return self.finish.usage
        if self.stopped is not None:
            usage = self.stopped.usage
            if usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens > 0:
                return usage
        return None

    def running_usage(self) -> router_pb2.Usage | None:
        """What the backend had produced when the call stopped short: the router's account of it, else
        the last delta's running count (None before any output)."""
        if self.stopped is not None:
            return self.stopped.usage
        if self.running is None:
            return None
        running = self.running
        return router_pb2.Usage(input_tokens=running.input_tokens, output_tokens=running.output_tokens)

    def _status(self) -> tuple[UsageStatus, str | None]:
        if self.finish is not None:
            if self.finish.finish_reason == "error":
                return "error", self.finish.error_code or "upstream_error"
            return "ok", None
        if self.error is not None:
            return "error", self.error.code or type(self.error).__name__
        return "client_disconnected", None

    def billed_usage(self) -> router_pb2.Usage | None:
        """What the usage event bills: the Finish's, else the running usage."""
        return self.finish.usage if self.finish is not None else self.running_usage()

    def to_event(self) -> UsageEventV1:
        status, error_type = self._status()
        usage = self.billed_usage()
        tokens = token_counts(usage) if usage is not None else TokenCounts()
        finish = self.finish if self.finish is not None else self.stopped
        now = time.monotonic()
        return UsageEventV1(
            request_id=self.request_id, account_id=self.account_id, key_id=self.key_id, api=self.api,
            model_requested=self.model_requested[:256], model_served=self.model_id,
            deployment_id=(finish.deployment_id if finish else self.deployment_id) or None,
            provider=(finish.provider if finish else self.provider) or "none",
            price_version=self.price_version, tokens=tokens, status=status,
            error_type=error_type[:64] if error_type else None, streamed=self.streamed,
            started_at=self.started_at,
            ttft_ms=int((self.first_byte - self.started) * 1000) if self.first_byte is not None else None,
            duration_ms=int((now - self.started) * 1000), edge_id=self.edge_id,
            attempts=max(1, min(finish.attempts if finish else 1, 16)),
        )


def token_counts(usage: router_pb2.Usage) -> TokenCounts:
    return TokenCounts(
        input=usage.input_tokens, cached_input=usage.cached_input_tokens,
        cache_write=usage.cache_write_tokens, output=usage.output_tokens,
        reasoning=min(usage.reasoning_tokens, usage.output_tokens),
    )


_USAGE_FIELDS = (
    "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
)


def added(usages: list[router_pb2.Usage]) -> router_pb2.Usage:
    """The usages of several generations (an answer's choices) as one."""
    return router_pb2.Usage(**{name: sum(getattr(u, name) for u in usages) for name in _USAGE_FIELDS})


@dataclass(frozen=True)
class ChoicesSettlement:
    """What the admission ticket settles for an answer of several choices, each one's own record
    (``choices.py``), by the rules of one (``admission/ticket.py``): every choice's usage known → their
    sum; otherwise the running figures, with the input left to the reserved bound while any choice that
    produced something has not said its prompt, and the whole reservation kept while one has no count
    at all. What is unknown stays at its worst case."""

    output_started: bool
    usage: router_pb2.Usage | None
    running: router_pb2.Usage | None

    @classmethod
    def of(cls, records: list[RequestRecord]) -> ChoicesSettlement:
        settled = [record.settled_usage() for record in records]
        started = any(record.output_started or record.used_anything for record in records)
        if all(usage is not None for usage in settled):
            return cls(started, added([u for u in settled if u is not None]), None)
        input_tokens, output_tokens, input_known = 0, 0, True
        for record, usage in zip(records, settled, strict=True):
            if usage is not None:
                input_tokens += usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
                output_tokens += usage.output_tokens
            elif record.output_started or record.used_anything:
                if (running := record.running_usage()) is None:
                    return cls(started, None, None)  # no count at all: the whole reservation stays
                input_tokens += running.input_tokens
                output_tokens += running.output_tokens
                input_known = input_known and running.input_tokens > 0
        if not input_known:
            input_tokens = 0  # the ticket then keeps the reserved bound of the input
        return cls(started, None, router_pb2.Usage(input_tokens=input_tokens, output_tokens=output_tokens))


_STATUS_RANK: dict[UsageStatus, int] = {"error": 2, "client_disconnected": 1, "ok": 0}


def choices_event(records: list[RequestRecord]) -> UsageEventV1:
    """The one usage.v1 event of an answer of several choices: the first choice's, with every
    choice's tokens added up, the earliest first byte, the most attempts, and the worst status any
    choice ended with (an error, else the client leaving, else ok)."""
    events = [record.to_event() for record in records]
    worst = max(events, key=lambda event: _STATUS_RANK[event.status])
    firsts = [event.ttft_ms for event in events if event.ttft_ms is not None]
    return events[0].model_copy(update={
        "tokens": TokenCounts(**{
            name: sum(getattr(event.tokens, name) for event in events) for name in TokenCounts.model_fields
        }),
        "status": worst.status, "error_type": worst.error_type, "ttft_ms": min(firsts) if firsts else None,
        "duration_ms": max(event.duration_ms for event in events),
        "attempts": max(event.attempts for event in events),
    })
