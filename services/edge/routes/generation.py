"""The one request flow behind chat completions, completions and messages:

    authenticate (keys.v1 index) → read + parse the body (400 in the API's words) → resolve the model
    (catalog.v1 view: alias, access, sunset, output limit) → admit (one Redis round trip: every limit
    of the key checked and the worst case reserved) → stream: start the router's Generate call and
    wait for its first message, then SSE; otherwise one Complete call, then JSON → settle the
    reservation. An answer of several choices (``n``, a completion's batch of prompts) makes one call
    per choice, read together (``choices.py``).

Everything before the first router message can still fail with a proper HTTP status; after it, a
failure is an error event at the end of the stream. A stream whose first message takes longer than
``EDGE_STREAM_KEEPALIVE_SECONDS`` (a model thinking, a slow fallback) starts anyway with a keep-alive,
and keeps sending one whenever it is that long quiet, so that no proxy between the client and the edge
cuts it as idle; a failure before its first token is then an error event too (the fallback behind it
still runs: nothing of an answer has been sent). The router call is cancelled whenever this
handler stops early, including when the client disconnects at any point after admission, streamed or
not (``DisconnectWatch``), which cancels the backend generation behind it: the request ends as
``client_disconnected``, billed for what the router says the generation used until it stopped (its
account of the stopped call; what the edge had seen where no account comes).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from services.common.errors import DependencyUnavailable, InvalidRequest, TollgateError, UpstreamError
from services.common.events.catalog import ModelEntry, PriceEntry
from services.common.events.keys import KeyEventV1
from services.common.events.usage import Api as ApiName
from services.edge.admission.reservation import Reservation, reserve_for_choices
from services.edge.admitted import Admitted, AdmittedStream
from services.edge.auth import presented_key
from services.edge.capabilities import check_generates
from services.edge.catalog_view import deprecation_headers
from services.edge.choices import (
    ENDED_WITHOUT_FINISH,
    ChoiceStream,
    choice_encoders,
    choice_events,
    complete_choices,
    encode_delta,
    merged_answer,
)
from services.edge.content import check_image_input
from services.edge.convert import (
    EventStream,
    PublicRequest,
    max_tokens_param,
    requested_max_tokens,
    to_generate_requests,
)
from services.edge.cors import check_browser_opt_in
from services.edge.dependencies import EdgeDeps
from services.edge.disconnect import DisconnectWatch
from services.edge.request_events import request_event
from services.edge.router_client import StreamCall
from services.edge.routes.responses import Flavor, error_response, model_response, read_body
from services.edge.session_call import QUIET
from services.edge.usage.record import RequestRecord
from tollgate.router.v1 import router_pb2

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
CLIENT_CLOSED_REQUEST = 499  # nginx's status for it: only logs ever see it, the connection is gone


@dataclass(frozen=True)
class Api:
    name: ApiName
    flavor: Flavor
    parse: Callable[[bytes], PublicRequest]
    stream: Callable[[str, str, PublicRequest], EventStream]
    # request id, model, the router's whole answer, the parsed request
    build: Callable[[str, str, router_pb2.CompleteResponse, PublicRequest], BaseModel]
    browser_opt_in: str | None = None  # a header a browser's request must set to "true" (Anthropic's rule)
    # the client's name for a parameter the router named (an API translated at the door names its own)
    client_param: Callable[[str], str] | None = None

    def for_client(self, exc: TollgateError) -> TollgateError:
        """``exc`` naming the parameter as the client sent it, in its ``param`` and in its message
        (Anthropic's error format has only the message): in the message, a name with an underscore
        wherever it stands alone, a plain word (``messages``) only where it is quoted, so the prose
        around it is left as it was."""
        if self.client_param is None or not exc.param or (named := self.client_param(exc.param)) == exc.param:
            return exc
        name = re.escape(exc.param)
        alone = rf"(?<![\w.]){name}(?![\w.])" if "_" in exc.param else rf"(?<=['\"`]){name}(?=['\"`])"
        exc.message = re.sub(alone, named, exc.message)
        exc.param = named
        return exc


async def _events(
    call: StreamCall, first: router_pb2.GenerateResponse, encoder: EventStream, admitted: Admitted
) -> AsyncGenerator[bytes, None]:
    try:
        message: router_pb2.GenerateResponse | None = first
        messages = call.rest()
        while message is not None:
            if message.WhichOneof("event") == "delta":
                admitted.observe(message)
                yield encode_delta(encoder, message.delta)
            elif message is QUIET:
                yield encoder.keep_alive()
            else:
                admitted.observe(message)
                yield encoder.finish(message.finish)
                return
            message = await anext(messages, None)
        raise UpstreamError(ENDED_WITHOUT_FINISH)
    except TollgateError as exc:
        admitted.fail(exc)
        yield encoder.error(exc)
    finally:
        if (account := await call.stop()) is not None:
            admitted.observe_stopped(account)


def require_usage_recording(deps: EdgeDeps) -> None:
    """No request is admitted while its usage cannot be recorded (the spool refuses more)."""
    if not deps.usage.accepting:
        raise DependencyUnavailable(
            "Usage cannot be recorded right now, so no request is admitted; retry shortly.", retry_after=5.0,
        )


async def admit(
    deps: EdgeDeps, key: KeyEventV1, request_id: str, api: ApiName, requested: str, model: ModelEntry,
    price: PriceEntry | None, reservation: Reservation, streamed: bool, received_at: datetime,
    choices: int = 1, flavor: Flavor = "openai",
) -> Admitted:
    """Take ``reservation`` from the key's limits (raising their refusal), then the request is
    admitted: the ``Admitted`` that settles it and emits its usage, and its requests.v1 record. Shared
    by every endpoint that generates or embeds; the rate-limit headers are in the ``flavor`` of the
    client's API."""
    ticket = await deps.admission.admit(key, reservation, price, request_id, flavor)
    admitted = Admitted(ticket, RequestRecord(
        request_id=request_id, account_id=key.account_id, key_id=key.key_id, api=api,
        model_requested=requested, model_id=model.id, price_version=price.id if price else None,
        streamed=streamed, edge_id=deps.settings.instance_id,
    ), deps.admission, deps.usage, choices)
    deps.request_events.emit(request_event(
        request_id, api, key, requested, streamed, received_at, deps.settings.instance_id, reservation, None,
    ))
    return admitted


async def serve(request: Request, deps: EdgeDeps, api: Api) -> Response | AdmittedStream:
    request_id: str = request.scope["state"]["request_id"]
    received_at = datetime.now(UTC)
    call: StreamCall | None = None
    choices: ChoiceStream | None = None  # the streams of an answer of several choices
    running: StreamCall | ChoiceStream | None = None  # whichever of the two is open: stopped on a failure
    quiet_start = False
    admitted: Admitted | None = None
    key: KeyEventV1 | None = None
    parsed: PublicRequest | None = None
    reservation: Reservation | None = None
    model: ModelEntry | None = None
    watch: DisconnectWatch | None = None
    try:
        if api.browser_opt_in is not None:
            check_browser_opt_in(request.headers, api.browser_opt_in)
        key = deps.key_index.authenticate(presented_key(request.headers))
        parsed = api.parse(await read_body(request, deps.settings.max_body_bytes))
        model = deps.catalog_view.resolve(parsed.model, key)
        check_generates(model, parsed.model)
        limit = requested_max_tokens(parsed)
        if limit is not None and limit > model.max_output_tokens:
            raise InvalidRequest(
                f"max_tokens is too large: {limit}. This model supports at most "
                f"{model.max_output_tokens} output tokens.", param=max_tokens_param(parsed),
            )
        requests = to_generate_requests(
            parsed, request_id, key.account_id, model.id, default_max_tokens=model.max_output_tokens
        )
        generate = requests[0]
        check_image_input(generate, model)
        require_usage_recording(deps)
        price = deps.catalog_view.current_price(model.id)
        reservation = reserve_for_choices(requests, price)
        admitted = await admit(deps, key, request_id, api.name, parsed.model, model, price, reservation,
                               bool(parsed.stream), received_at, len(requests), api.flavor)
        watch = DisconnectWatch(request.receive)  # the body is read: what comes next is the disconnect
        timeout = deps.settings.router_timeout_seconds
        keepalive = deps.settings.stream_keepalive_seconds or None
        if parsed.stream and len(requests) > 1:
            running = choices = await ChoiceStream.open(deps.router, requests, timeout, admitted, keepalive)
            quiet_start = not await choices.first()
        elif parsed.stream:
            running = call = await deps.router.stream(generate, timeout, keepalive)
            first = await call.first()
            if first is not QUIET:
                admitted.observe(first)
        elif len(requests) > 1:
            wholes = await complete_choices(deps.router, requests, timeout, admitted)
            watch.stop()
        else:
            wholes = [await deps.router.complete(generate, timeout, admitted.observe_stopped)]
            watch.stop()
            admitted.observe_whole(wholes[0].finish)
    except TollgateError as exc:
        if watch is not None:
            watch.stop()
        if running is not None and admitted is not None and (account := await running.stop()) is not None:
            admitted.observe_stopped(account)
        going = deprecation_headers(model) if model is not None else {}
        if admitted is None:
            deps.request_events.emit(request_event(
                request_id, api.name, key, parsed.model if parsed else "-",
                bool(parsed.stream) if parsed else False, received_at, deps.settings.instance_id,
                reservation, exc,
            ))
            return error_response(api.for_client(exc), api.flavor, going)
        admitted.fail(exc)
        admitted.close()
        return error_response(api.for_client(exc), api.flavor, {**admitted.ticket.headers, **going})
    except BaseException as exc:  # client gone, shutdown or a bug: never keep a lease, always record usage
        absorbed = watch is not None and isinstance(exc, asyncio.CancelledError) and watch.absorb()
        if watch is not None:
            watch.stop()  # absorbing stopped it already
        try:
            if running is not None and (account := await running.stop()) is not None and admitted is not None:
                admitted.observe_stopped(account)
        finally:
            if admitted is not None:
                admitted.close()
        if absorbed:
            return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody left to read it
        raise
    headers = {**admitted.ticket.headers, **deprecation_headers(model)}
    if choices is not None:
        encoders = choice_encoders(api.stream(request_id, parsed.model, parsed), len(requests))
        events = choice_events(choices, encoders, admitted, quiet_start)
        return AdmittedStream(events, admitted, {**SSE_HEADERS, **headers}, watch)
    if call is not None:
        encoder = api.stream(request_id, parsed.model, parsed)
        return AdmittedStream(
            _events(call, first, encoder, admitted), admitted, {**SSE_HEADERS, **headers}, watch
        )
    return _answer(wholes, api, request_id, parsed, headers, admitted)


def _answer(
    wholes: list[router_pb2.CompleteResponse], api: Api, request_id: str, parsed: PublicRequest,
    headers: dict[str, str], admitted: Admitted,
) -> Response:
    """The non-streamed body (of every choice), or the error a Finish carries (generation failed
    part-way)."""
    try:
        bodies = [api.build(request_id, parsed.model, whole, parsed) for whole in wholes]
        body = bodies[0] if len(bodies) == 1 else merged_answer(bodies, wholes)
    except TollgateError as exc:
        admitted.fail(exc)
        return error_response(api.for_client(exc), api.flavor, headers)
    finally:
        admitted.close()
    return model_response(body, headers)


def created_now() -> int:
    return int(time.time())
