"""One admitted request, from admission to its end: what it observed, and the one place it ends.

``close`` runs exactly once, however the request ended (finished, failed, the client left): it settles
the admission ticket against what was really used and emits the request's usage.v1 event. It is
synchronous, so it is safe in a ``finally`` inside a cancelled scope; the I/O it starts (the settle
script, the spool write) runs in tasks of its own.

An answer of several choices (``choices.py``) keeps one record per choice, each fed by its own
generation (``choice``), and settles and bills them as one request (``usage.record.ChoicesSettlement``,
``choices_event``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator

from starlette.types import Receive, Scope, Send

from services.common.errors import TollgateError
from services.edge.admission.limiter import Admission
from services.edge.admission.ticket import Ticket
from services.edge.disconnect import DisconnectWatch
from services.edge.usage.emitter import UsageEmitter
from services.edge.usage.record import ChoicesSettlement, RequestRecord, choices_event
from tollgate.router.v1 import router_pb2


class Admitted:
    def __init__(
        self, ticket: Ticket, record: RequestRecord, admission: Admission, usage: UsageEmitter,
        choices: int = 1,
    ) -> None:
        self.ticket = ticket
        self.record = record  # the first choice's: the request's, when it has one
        self.records = [record] + [dataclasses.replace(record) for _ in range(choices - 1)]
        self._admission = admission
        self._usage = usage
        self.closed = False

    def observe(self, message: router_pb2.GenerateResponse, choice: int = 0) -> None:
        self.records[choice].observe(message)

    def observe_whole(self, finish: router_pb2.Finish, choice: int = 0) -> None:
        self.records[choice].observe_whole(finish)

    def observe_stopped(self, account: router_pb2.Finish, choice: int = 0) -> None:
        """The router's account of the call the edge stopped: what its generation used."""
        self.records[choice].observe_stopped(account)

    def fail(self, exc: TollgateError) -> None:
        self.record.fail(exc)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        record, ticket = self.record, self.ticket
        if len(self.records) == 1:
            ticket.output_started = record.output_started or record.used_anything
            ticket.usage = record.settled_usage()
            ticket.running = record.running_usage()
            event = record.to_event()
        else:
            settlement = ChoicesSettlement.of(self.records)
            ticket.output_started, ticket.usage = settlement.output_started, settlement.usage
            ticket.running = settlement.running
            event = choices_event(self.records)
        self._admission.release(ticket)
        self._usage.emit(event)


class AdmittedStream:
    """The SSE response of an admitted request: sends each chunk as the router produces it, stops
    (cancelling the router call behind it) as soon as the client disconnects, and closes its request
    however the ASGI call ends: finished, failed, or cancelled, even before the first chunk.

    Not Starlette's ``StreamingResponse``: under uvicorn's ASGI 2.3 that one runs every stream in an
    anyio task group with a second task listening for the disconnect, which cost the edge more CPU per
    streamed request than the rest of the stream's handling. Here the one extra task is the request's
    ``DisconnectWatch``, started at admission, and it cancels the serving task directly.
    """

    media_type = b"text/event-stream; charset=utf-8"

    def __init__(
        self, content: AsyncGenerator[bytes, None], admitted: Admitted, headers: dict[str, str],
        watch: DisconnectWatch,
    ) -> None:
        self._content = content
        self._admitted = admitted
        self._watch = watch
        self._headers = [(b"content-type", self.media_type)] + [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            async for chunk in self._content:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not self._watch.absorb():
                raise
            # the client left: a normal end of the stream
        finally:
            self._watch.stop()  # from here on a disconnect must not cancel the clean-up below
            await self._content.aclose()  # cancels the router call if it was still running
            self._admitted.close()
