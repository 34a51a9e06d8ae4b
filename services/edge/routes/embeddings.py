"""``POST /v1/embeddings`` (OpenAI's): vectors of texts or token ids, metered and billed as input.

The flow of a non-streamed generation (``routes/generation.py``) with what an embedding is: the key,
the body and the model checked; the worst case admitted (every input byte a token, no output); one
``Embed`` call to the router, cancelled if the client leaves; the reservation settled on the backend's
token count and one usage.v1 event (``openai.embeddings``). A model serves embeddings when its
catalog entry lists the ``embeddings`` capability: a chat model asked for vectors is the client's
mistake, answered before anything is admitted or forwarded.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from services.common.errors import TollgateError
from services.common.events.catalog import ModelEntry
from services.common.events.keys import KeyEventV1
from services.common.events.usage import Api as ApiName
from services.edge.admission.reservation import Reservation, reserve_for_embedding
from services.edge.admitted import Admitted
from services.edge.auth import presented_key
from services.edge.capabilities import check_embeds
from services.edge.catalog_view import deprecation_headers
from services.edge.convert_embeddings import embeddings_json, parse_embeddings_request, to_embed_request
from services.edge.dependencies import EdgeDeps
from services.edge.disconnect import DisconnectWatch
from services.edge.request_events import request_event
from services.edge.routes.generation import CLIENT_CLOSED_REQUEST, admit, require_usage_recording
from services.edge.routes.responses import error_response, read_body
from tollgate.router.v1 import router_pb2

API: ApiName = "openai.embeddings"
# Vectors above this many bytes are written out in a worker thread: the largest answer (2,048 inputs
# of 1,536 dimensions) takes about 0.24 s of CPU as numbers, which on the event loop would stall
# every other request of this edge for as long.
LARGE_ANSWER_BYTES = 1024 * 1024


def _finish(reply: router_pb2.EmbedResponse) -> router_pb2.Finish:
    """The reply as the usage record reads a finished request."""
    return router_pb2.Finish(
        finish_reason="stop", usage=reply.usage, deployment_id=reply.deployment_id, provider=reply.provider,
        model_served=reply.model_served, attempts=reply.attempts,
    )


async def embeddings(request: Request) -> Response:
    deps: EdgeDeps = request.app.state.deps
    request_id: str = request.scope["state"]["request_id"]
    received_at = datetime.now(UTC)
    key: KeyEventV1 | None = None
    requested = "-"
    model: ModelEntry | None = None
    reservation: Reservation | None = None
    admitted: Admitted | None = None
    watch: DisconnectWatch | None = None
    try:
        key = deps.key_index.authenticate(presented_key(request.headers))
        parsed, inputs = parse_embeddings_request(await read_body(request, deps.settings.max_body_bytes))
        requested = parsed.model
        model = deps.catalog_view.resolve(parsed.model, key)
        check_embeds(model, parsed.model)
        embed = to_embed_request(parsed, inputs, request_id, key.account_id, model.id)
        require_usage_recording(deps)
        price = deps.catalog_view.current_price(model.id)
        reservation = reserve_for_embedding(embed, price)
        admitted = await admit(deps, key, request_id, API, parsed.model, model, price, reservation, False,
                               received_at)
        watch = DisconnectWatch(request.receive)
        reply = await deps.router.embed(embed, deps.settings.router_timeout_seconds)
        watch.stop()
        admitted.observe_whole(_finish(reply))
    except TollgateError as exc:
        if watch is not None:
            watch.stop()
        going = deprecation_headers(model) if model is not None else {}
        if admitted is None:
            deps.request_events.emit(request_event(
                request_id, API, key, requested, False, received_at, deps.settings.instance_id,
                reservation, exc,
            ))
            return error_response(exc, "openai", going)
        admitted.fail(exc)
        admitted.close()
        return error_response(exc, "openai", {**admitted.ticket.headers, **going})
    except BaseException as exc:  # client gone, shutdown or a bug: never keep a lease
        absorbed = watch is not None and isinstance(exc, asyncio.CancelledError) and watch.absorb()
        if watch is not None:
            watch.stop()
        if admitted is not None:
            admitted.close()  # billed for nothing: the edge never learnt what the backend counted
        if absorbed:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        raise
    admitted.close()
    headers = {**admitted.ticket.headers, **deprecation_headers(model)}
    if sum(len(vector) for vector in reply.embeddings) <= LARGE_ANSWER_BYTES:
        body = embeddings_json(parsed.model, reply, parsed.encoding_format)
    else:  # the event loop keeps serving other requests meanwhile, in the GIL's 5 ms turns
        body = await asyncio.to_thread(embeddings_json, parsed.model, reply, parsed.encoding_format)
    return Response(body, media_type="application/json", headers=headers)
