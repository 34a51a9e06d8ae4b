"""One admitted request, from admission to its end: what it observed, and the one place it ends.

``close`` runs exactly once, however the request ended (finished, failed, the client left): it settles
the admission ticket against what was really used and emits the request's usage.v1 event. It is
synchronous, so it is safe in a ``finally`` inside a cancelled scope; the I/O it starts (the settle
script, the spool write) runs in tasks of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from services.common.errors import TollgateError
from services.edge.admission.limiter import Admission
from services.edge.admission.ticket import Ticket
from services.edge.usage.emitter import UsageEmitter
from services.edge.usage.record import RequestRecord
from tollgate.router.v1 import router_pb2


class Admitted:
    def __init__(
        self, ticket: Ticket, record: RequestRecord, admission: Admission, usage: UsageEmitter
    ) -> None:
        self.ticket = ticket
        self.record = record
        self._admission = admission
        self._usage = usage
        self.closed = False

    def observe(self, message: router_pb2.GenerateResponse) -> None:
        self.record.observe(message)

    def observe_whole(self, finish: router_pb2.Finish) -> None:
        self.record.observe_whole(finish)

    def fail(self, exc: TollgateError) -> None:
        self.record.fail(exc)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        record, ticket = self.record, self.ticket
        ticket.output_started = record.output_started
        ticket.usage = record.finish.usage if record.finish is not None else None
        ticket.running = record.running_usage()
        self._admission.release(ticket)
        self._usage.emit(record.to_event())


class AdmittedStream(StreamingResponse):
    """A streaming response that closes its request however the ASGI call ends: finished, failed, or
    cancelled by a client disconnect (even one before the body iterator ever started)."""

    def __init__(self, content: AsyncIterator[bytes], admitted: Admitted, headers: dict[str, str]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._admitted = admitted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._admitted.close()
