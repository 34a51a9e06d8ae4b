"""The one request flow behind chat completions, completions and messages:

    authenticate (keys.v1 index) → read + parse the body (400 in the API's words) → resolve the model
    (catalog.v1 view: alias, access, sunset, output limit) → admit (one Redis round trip: every limit
    of the key checked and the worst case reserved) → open the router stream and wait for its first
    message → answer: JSON, or SSE that starts only after that first message → settle the reservation.

Everything before the first router message can still fail with a proper HTTP status; after it, a
failure is an error event at the end of the stream. The router call is cancelled whenever this
handler stops early, including when the client disconnects mid-stream (Starlette cancels the body
iterator), which cancels the backend generation behind it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from services.common.errors import InvalidRequest, TollgateError, UpstreamError
from services.common.events.catalog import ModelEntry
from services.common.events.keys import KeyEventV1
from services.common.events.requests import RequestEventV1
from services.common.events.usage import Api as ApiName
from services.edge.admission.limiter import Admission
from services.edge.admission.reservation import Reservation, reserve_for
from services.edge.admission.ticket import Ticket
from services.edge.auth import presented_key
from services.edge.convert import (
    EventStream,
    PublicRequest,
    requested_max_tokens,
    to_generate_request,
)
from services.edge.dependencies import EdgeDeps
from services.edge.router_client import RouterCall
from services.edge.routes.responses import Flavor, error_response, json_response, read_body
from tollgate.router.v1 import router_pb2

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@dataclass(frozen=True)
class Api:
    name: ApiName
    flavor: Flavor
    parse: Callable[[bytes], PublicRequest]
    stream: Callable[[str, str, PublicRequest], EventStream]
    build: Callable[[str, str, str, router_pb2.Finish], object]  # request id, model, text, finish


def deprecation_headers(model: ModelEntry) -> dict[str, str]:
    """RFC 9745 ``Deprecation`` and RFC 8594 ``Sunset`` for a model that is going away."""
    headers: dict[str, str] = {}
    if model.deprecated_at is not None:
        headers["deprecation"] = f"@{int(model.deprecated_at.timestamp())}"
        if model.sunset_at is not None:
            headers["sunset"] = format_datetime(model.sunset_at, usegmt=True)
        if model.replacement:
            headers["x-tollgate-replacement"] = model.replacement
    return headers


class TicketedStream(StreamingResponse):
    """A streaming response that releases its admission ticket however the ASGI call ends: finished,
    failed, or cancelled by a client disconnect (even one before the body iterator ever started)."""

    def __init__(self, content: AsyncIterator[bytes], ticket: Ticket, admission: Admission,
                 headers: dict[str, str]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._ticket = ticket
        self._admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._admission.release(self._ticket)  # synchronous: safe inside a cancelled scope


def _observe(ticket: Ticket, message: router_pb2.GenerateResponse) -> None:
    if message.WhichOneof("event") == "delta":
        ticket.output_started = True
    else:
        ticket.usage = message.finish.usage


async def _events(
    call: RouterCall, first: router_pb2.GenerateResponse, encoder: EventStream, ticket: Ticket
) -> AsyncIterator[bytes]:
    try:
        message: router_pb2.GenerateResponse | None = first
        messages = call.rest()
        while message is not None:
            _observe(ticket, message)
            if message.WhichOneof("event") == "delta":
                yield encoder.delta(message.delta.text)
            else:
                yield encoder.finish(message.finish)
                return
            message = await anext(messages, None)
        yield encoder.error(UpstreamError("The backend stream ended without a final message."))
    except TollgateError as exc:
        yield encoder.error(exc)
    finally:
        call.cancel()


def _request_event(
    request_id: str, api: Api, key: KeyEventV1 | None, model: str, stream: bool, received_at: datetime,
    edge_id: str, reservation: Reservation | None, refusal: TollgateError | None,
) -> RequestEventV1:
    return RequestEventV1(
        request_id=request_id, account_id=key.account_id if key else None, key_id=key.key_id if key else None,
        api=api.name, model=model[:256] or "-", stream=stream,
        decision="rejected" if refusal else "admitted",
        reject_code=((refusal.code or type(refusal).__name__)[:64]) if refusal else None,
        reserved_input_tokens=reservation.input_tokens if reservation else 0,
        reserved_output_tokens=reservation.output_tokens if reservation else 0,
        reserved_cost_micros=reservation.cost_micros if reservation else 0,
        received_at=received_at, edge_id=edge_id,
    )


async def serve(request: Request, deps: EdgeDeps, api: Api) -> Response:
    request_id: str = request.scope["state"]["request_id"]
    received_at = datetime.now(UTC)
    call: RouterCall | None = None
    ticket: Ticket | None = None
    key: KeyEventV1 | None = None
    parsed: PublicRequest | None = None
    reservation: Reservation | None = None
    try:
        key = deps.key_index.authenticate(presented_key(request.headers))
        parsed = api.parse(await read_body(request, deps.settings.max_body_bytes))
        model = deps.catalog_view.resolve(parsed.model, key)
        limit = requested_max_tokens(parsed)
        if limit is not None and limit > model.max_output_tokens:
            raise InvalidRequest(
                f"max_tokens is too large: {limit}. This model supports at most "
                f"{model.max_output_tokens} output tokens.", param="max_tokens",
            )
        generate = to_generate_request(
            parsed, request_id, key.account_id, model.id, default_max_tokens=model.max_output_tokens
        )
        price = deps.catalog_view.current_price(model.id)
        reservation = reserve_for(generate, price)
        ticket = await deps.admission.admit(key, reservation, price)
        deps.request_events.emit(_request_event(
            request_id, api, key, parsed.model, bool(parsed.stream), received_at, deps.settings.instance_id,
            reservation, None,
        ))
        call = RouterCall(deps.router_channel, generate, deps.settings.router_timeout_seconds)
        first = await call.first()
        _observe(ticket, first)
    except TollgateError as exc:
        if call is not None:
            call.cancel()
        if ticket is None:
            deps.request_events.emit(_request_event(
                request_id, api, key, parsed.model if parsed else "-",
                bool(parsed.stream) if parsed else False, received_at, deps.settings.instance_id,
                reservation, exc,
            ))
            return error_response(exc, api.flavor)
        deps.admission.release(ticket)
        return error_response(exc, api.flavor, ticket.headers)
    except BaseException:  # cancelled (client gone) or a bug: never keep a lease or a reservation
        if call is not None:
            call.cancel()
        if ticket is not None:
            deps.admission.release(ticket)
        raise
    headers = {**ticket.headers, **deprecation_headers(model)}
    if parsed.stream:
        encoder = api.stream(request_id, parsed.model, parsed)
        return TicketedStream(
            _events(call, first, encoder, ticket), ticket, deps.admission, {**SSE_HEADERS, **headers}
        )
    return await _collect(call, first, api, request_id, parsed.model, headers, ticket, deps.admission)


async def _collect(
    call: RouterCall, first: router_pb2.GenerateResponse, api: Api, request_id: str, model: str,
    headers: dict[str, str], ticket: Ticket, admission: Admission,
) -> Response:
    parts: list[str] = []
    finish: router_pb2.Finish | None = None
    try:
        message: router_pb2.GenerateResponse | None = first
        messages = call.rest()
        while message is not None:
            _observe(ticket, message)
            if message.WhichOneof("event") == "delta":
                parts.append(message.delta.text)
            else:
                finish = message.finish
                break
            message = await anext(messages, None)
        if finish is None:
            raise UpstreamError("The backend stream ended without a final message.")
        body = api.build(request_id, model, "".join(parts), finish)
    except TollgateError as exc:
        return error_response(exc, api.flavor, headers)
    finally:
        call.cancel()
        admission.release(ticket)
    dump = getattr(body, "model_dump", None)
    return json_response(dump(mode="json", exclude_none=False) if dump else body, headers=headers)


def created_now() -> int:
    return int(time.time())
