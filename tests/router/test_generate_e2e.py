"""The router process on the real broker: routes by the catalog it follows on catalog.v1, falls back
before the first byte only, and reports who served the request with the backend's usage; through its
one-call RPCs and through the Session the edge uses."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from infra.stack.platform import Platform
from services.common.errors import NotFound, UpstreamError
from services.common.events.catalog import CatalogEventV1, DeploymentEntry, ModelEntry
from services.common.kafka.producer import EventProducer
from services.edge.router_client import RouterClient
from tests.kafka_helpers import ClientSettings
from tests.upstream.harness import UpstreamServer
from tollgate.router.v1 import router_pb2, router_pb2_grpc


@pytest.fixture(scope="module")
def router(platform: Platform) -> Iterator[Platform]:
    service = platform.services["router"]
    service.start()
    service.wait_ready()
    yield platform
    service.stop()


@pytest.fixture
async def publish(router: Platform) -> AsyncIterator[EventProducer]:
    settings = ClientSettings(kafka_bootstrap=router.bus.bootstrap, topic_prefix=router.config.topic_prefix)
    producer = EventProducer(settings, client_id="catalog-test")
    await producer.start()
    yield producer
    await producer.stop()


async def add_model(
    producer: EventProducer, model: str, upstream: UpstreamServer, scenarios: list[str],
    backends: list[str] | None = None,
) -> None:
    """A model whose deployments replay ``scenarios`` in order: the first is primary, the rest fallbacks;
    OpenAI-compatible unless ``backends`` says otherwise (``openai`` or ``anthropic``, per deployment)."""
    kinds = backends or ["openai"] * len(scenarios)
    ids = [f"{model}-d{i}" for i in range(len(scenarios))]
    entities: list[ModelEntry | DeploymentEntry] = [
        ModelEntry(id=model, display_name=model, context_length=4096, max_output_tokens=512)
    ]
    for i, scenario in enumerate(scenarios):
        entities.append(DeploymentEntry(
            id=ids[i], model_id=model if i == 0 else f"{model}-standby", backend=kinds[i],  # type: ignore[arg-type]
            endpoint=upstream.anthropic_base_url if kinds[i] == "anthropic" else upstream.openai_base_url,
            upstream_model=f"{scenario}:{model}",
            fallback=tuple(ids[1:]) if i == 0 else (),
        ))
    # Fallbacks first, the model, the primary last: entities sit on different partitions, so the
    # router could see the primary before its fallbacks if they were sent after it, and route a
    # request down a chain still missing them. Each publish waits for its ack, so by the time the
    # primary is readable everything it names is too.
    await publish_in_order(producer, [*entities[2:], entities[0], entities[1]])


async def publish_in_order(producer: EventProducer, entities: list[ModelEntry | DeploymentEntry]) -> None:
    """Each on catalog.v1 after the one before it is acknowledged."""
    now = datetime.now(UTC)
    for entity in entities:
        event = CatalogEventV1(version=1, entity=entity, updated_at=now)
        await producer.publish("catalog.v1", event.record_key, event)


async def call(
    platform: Platform, model: str, rpc: str = "Generate", timeout: float = 20.0,
    messages: list[list[str]] | None = None, accepts_pieces: bool = True,
) -> tuple[list[str], router_pb2.Finish | None, grpc.aio.AioRpcError | None]:
    """Text pieces in order, the Finish, the gRPC error, from ``Generate`` (``messages`` collects each
    Delta's pieces, its text alone when it has none) or ``Complete`` (its whole text as one piece)."""
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.config.ports.router_grpc}") as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        while True:
            request = router_pb2.GenerateRequest(
                request_id=f"req_{uuid.uuid4().hex[:12]}", account_id="acct", model=model,
                chat=router_pb2.ChatInput(messages=[router_pb2.ChatMessage(role="user", content="Hello")]),
                sampling=router_pb2.SamplingParams(max_tokens=32), accepts_pieces=accepts_pieces,
            )
            deltas: list[str] = []
            finish: router_pb2.Finish | None = None
            try:
                if rpc == "Complete":
                    whole = await stub.Complete(request, timeout=30)
                    return [whole.text] if whole.text else [], whole.finish, None
                async for reply in stub.Generate(request, timeout=30):
                    if reply.WhichOneof("event") == "delta":
                        pieces = list(reply.delta.pieces) or [reply.delta.text]
                        deltas.extend(pieces)
                        if messages is not None:
                            messages.append(pieces)
                    else:
                        finish = reply.finish
                return deltas, finish, None
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)  # the catalog change has not reached the router yet
                    continue
                return deltas, finish, err


RPCS = pytest.mark.parametrize("rpc", ["Generate", "Complete"])


@RPCS
@pytest.mark.parametrize("failure", ["server-error", "rate-limited", "unauthorized"])
async def test_falls_back_to_the_next_deployment_before_the_first_byte(
    router: Platform, publish: EventProducer, upstream: UpstreamServer, failure: str, rpc: str
) -> None:
    model = f"fb-{failure}-{uuid.uuid4().hex[:6]}"
    await add_model(publish, model, upstream, [failure, "ok"])
    deltas, finish, err = await call(router, model, rpc)
    assert err is None and finish is not None
    assert "".join(deltas)
    assert (finish.deployment_id, finish.attempts, finish.finish_reason) == (f"{model}-d1", 2, "stop")
    assert finish.usage.output_tokens > 0 and finish.usage.input_tokens > 0
    assert upstream.model_stats(f"{failure}:{model}")["requests"] == 1
    assert upstream.model_stats(f"ok:{model}")["requests"] == 1


@RPCS
async def test_a_failure_after_the_first_byte_ends_with_an_error_and_no_fallback(
    router: Platform, publish: EventProducer, upstream: UpstreamServer, rpc: str
) -> None:
    """Complete says so the same way: a Finish with the error, and the text generated until then."""
    model = f"cut-{uuid.uuid4().hex[:6]}"
    await add_model(publish, model, upstream, ["cut-mid-stream", "ok"])
    deltas, finish, err = await call(router, model, rpc)
    assert err is None and finish is not None
    assert deltas and finish.finish_reason == "error" and finish.error_code
    assert upstream.model_stats(f"ok:{model}")["requests"] == 0


@RPCS
async def test_every_deployment_failing_is_a_grpc_error_with_its_code(
    router: Platform, publish: EventProducer, upstream: UpstreamServer, rpc: str
) -> None:
    model = f"down-{uuid.uuid4().hex[:6]}"
    await add_model(publish, model, upstream, ["server-error", "server-error"])
    deltas, _, err = await call(router, model, rpc)
    assert deltas == [] and err is not None
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert dict(err.trailing_metadata() or ())["tollgate-error-code"]


@RPCS
async def test_an_unknown_model_is_not_found(router: Platform, rpc: str) -> None:
    _, _, err = await call(router, "no-such-model", rpc, timeout=0)
    assert err is not None and err.code() == grpc.StatusCode.NOT_FOUND


async def _count(platform: Platform, model: str) -> router_pb2.CountTokensResponse | grpc.aio.AioRpcError:
    """CountTokens once the model has reached the router: its reply, or its gRPC error."""
    deadline = time.monotonic() + 20
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.config.ports.router_grpc}") as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        request = router_pb2.GenerateRequest(
            request_id=f"req_{uuid.uuid4().hex[:12]}", account_id="acct", model=model,
            chat=router_pb2.ChatInput(messages=[router_pb2.ChatMessage(role="user", content="Hello")]),
            sampling=router_pb2.SamplingParams(max_tokens=1),
        )
        while True:
            try:
                reply: router_pb2.CountTokensResponse = await stub.CountTokens(request, timeout=30)
                return reply
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    continue
                return err


async def test_count_tokens_goes_to_the_first_deployment_that_can_count(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    """An OpenAI-compatible primary cannot count and is passed over without a request; a rate-limited
    Anthropic deployment is fallen back from; the next one counts."""
    model = f"count-{uuid.uuid4().hex[:6]}"
    await add_model(publish, model, upstream, ["ok", "rate-limited", "ok"], ["openai", "anthropic", "anthropic"])
    reply = await _count(router, model)
    assert isinstance(reply, router_pb2.CountTokensResponse), reply
    assert (reply.input_tokens, reply.deployment_id, reply.provider) == (2095, f"{model}-d2", "anthropic")
    assert [r["path"] for r in upstream.requests_for(f"ok:{model}")] == ["/v1/messages/count_tokens"]
    assert upstream.model_stats(f"rate-limited:{model}")["requests"] == 1


async def test_count_tokens_on_a_model_no_deployment_can_count_is_refused(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    model = f"nocount-{uuid.uuid4().hex[:6]}"
    await add_model(publish, model, upstream, ["ok"])
    err = await _count(router, model)
    assert isinstance(err, grpc.aio.AioRpcError) and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(err.trailing_metadata() or ())["tollgate-error-code"] == "unsupported_parameter"
    assert upstream.model_stats(f"ok:{model}")["requests"] == 0


async def test_complete_answers_in_one_reply_what_generate_streams(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    model = f"whole-{uuid.uuid4().hex[:6]}"
    await add_model(publish, model, upstream, ["slow-stream"])  # one event per read: many messages
    per_message: list[list[str]] = []
    streamed, finish, err = await call(router, model, "Generate", messages=per_message)
    assert err is None and finish is not None and finish.finish_reason == "stop" and len(per_message) > 2
    whole, whole_finish, err = await call(router, model, "Complete")
    assert err is None and whole_finish is not None
    assert whole == ["".join(streamed)]
    assert (whole_finish.finish_reason, whole_finish.deployment_id) == ("stop", f"{model}-d0")
    assert whole_finish.usage == finish.usage and whole_finish.usage.output_tokens > 0


async def test_the_chunks_of_one_read_travel_as_pieces_only_to_an_edge_that_reads_them(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    """A long answer written in one go: many chunks per network read, one Delta each read. An edge older
    than ``pieces`` (accepts_pieces unset) gets the same text joined in ``text``: no text lost."""
    model = f"long-{uuid.uuid4().hex[:6]}"
    await add_model(publish, model, upstream, ["long-one-write"])  # many events in each read, always
    batched: list[list[str]] = []
    pieces, _, err = await call(router, model, messages=batched)
    assert err is None and len(pieces) > 100
    assert len(batched) < len(pieces) and max(len(b) for b in batched) > 1
    joined: list[list[str]] = []
    texts, _, err = await call(router, model, messages=joined, accepts_pieces=False)
    assert err is None and all(len(m) == 1 for m in joined)
    assert "".join(texts) == "".join(pieces)


async def test_the_session_keeps_the_rules_of_generate_and_complete(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    """The edge's session client against the router process: fallback before the first byte, the
    same answer as the one-call RPCs, errors with their type and code, a cut stream's error Finish."""
    model, down, cut = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("sess", "sess-down", "sess-cut"))
    await add_model(publish, model, upstream, ["server-error", "ok"])
    await add_model(publish, down, upstream, ["server-error", "server-error"])
    await add_model(publish, cut, upstream, ["cut-mid-stream", "ok"])
    for name in (model, down, cut):
        await call(router, name, "Complete")  # the router has the three models (waits out NOT_FOUND)
    expected, _, _ = await call(router, model, "Complete")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.config.ports.router_grpc}") as channel:
        client = RouterClient(router_pb2_grpc.RouterServiceStub(channel), session=True)
        try:
            whole = await client.complete(_session_request(model), timeout=30)
            assert [whole.text] == expected
            assert (whole.finish.deployment_id, whole.finish.attempts) == (f"{model}-d1", 2)
            streaming = await client.stream(_session_request(model), timeout=30)
            first = (await streaming.first()).delta
            texts = list(first.pieces) or [first.text]  # one piece travels as text
            finish = None
            async for message in streaming.rest():
                texts.extend(message.delta.pieces or [message.delta.text])
                finish = message.finish if message.HasField("finish") else finish
            assert "".join(texts) == whole.text and finish is not None and finish.attempts == 2
            with pytest.raises(UpstreamError) as failed:
                await client.complete(_session_request(down), timeout=30)
            assert failed.value.code
            with pytest.raises(NotFound):
                await client.complete(_session_request("no-such-model"), timeout=30)
            cut_whole = await client.complete(_session_request(cut), timeout=30)
            assert cut_whole.text and cut_whole.finish.finish_reason == "error"
            assert upstream.model_stats(f"ok:{cut}")["requests"] == 0
        finally:
            client.close()


def _session_request(model: str) -> router_pb2.GenerateRequest:
    return router_pb2.GenerateRequest(
        request_id=f"req_{uuid.uuid4().hex[:12]}", account_id="acct", model=model,
        chat=router_pb2.ChatInput(messages=[router_pb2.ChatMessage(role="user", content="Hello")]),
        sampling=router_pb2.SamplingParams(max_tokens=32), accepts_pieces=True,
    )


async def add_two_sided_model(producer: EventProducer, model: str, upstream: UpstreamServer) -> None:
    """Two deployments of ``model`` at weight 1, ``<model>-a`` and ``<model>-b``, each its own upstream
    model (``ok:<model>-a``, ``ok:<model>-b``) so the upstream counts them apart."""
    entities: list[ModelEntry | DeploymentEntry] = [
        DeploymentEntry(id=f"{model}-{side}", model_id=model, backend="openai", endpoint=upstream.openai_base_url,
                        upstream_model=f"ok:{model}-{side}", weight=1)
        for side in ("a", "b")
    ]
    entities.append(ModelEntry(id=model, display_name=model, context_length=4096, max_output_tokens=512))
    await publish_in_order(producer, entities)


async def test_deployments_of_one_model_share_its_requests_by_weight(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    """Two servers of one model at weight 1 each (two Triton nodes, two provider accounts): both
    serve, about half each, and the Finish names the one that did."""
    model = f"spread-{uuid.uuid4().hex[:6]}"
    await add_two_sided_model(publish, model, upstream)
    served = [(await call(router, model, "Complete"))[1] for _ in range(60)]
    by = {side: sum(1 for f in served if f is not None and f.deployment_id == f"{model}-{side}") for side in "ab"}
    assert by["a"] + by["b"] == 60
    assert by["a"] >= 10 and by["b"] >= 10, by  # 30 each expected; the standard deviation is 3.9
    assert upstream.model_stats(f"ok:{model}-a")["requests"] == by["a"]


@pytest.mark.parametrize("accepts", [True, False])
async def test_tool_calls_stream_as_fragments_to_callers_that_read_them(
    router: Platform, publish: EventProducer, upstream: UpstreamServer, accepts: bool
) -> None:
    """The fragments, joined, are the Finish's call; an edge older than the fragments gets the call
    whole in the Finish alone, and no delta without text."""
    model = f"tools-{uuid.uuid4().hex[:6]}"
    await add_model(publish, model, upstream, ["tool-calls"])
    await call(router, model, "Complete")  # until the router knows the model
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.config.ports.router_grpc}") as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        request = _session_request(model)
        request.accepts_tool_call_deltas = accepts
        replies = [r async for r in stub.Generate(request, timeout=30)]
    *deltas, last = replies
    fragments = [f for r in deltas for f in r.delta.tool_calls]
    [whole] = last.finish.tool_calls
    assert last.finish.finish_reason == "tool_calls" and whole.name == "get_weather"
    if accepts:
        assert len(fragments) > 3 and (fragments[0].id, fragments[0].name) == (whole.id, whole.name)
        assert "".join(f.arguments for f in fragments) == whole.arguments_json
    else:
        assert fragments == [] and len(deltas) == 1  # the first delta says who serves; nothing else


async def test_one_prompt_cache_key_or_end_user_stays_with_one_deployment(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    """Affinity: a conversation's turns reach the server that holds its prefix in cache, while
    different keys still use both servers."""
    model = f"sticky-{uuid.uuid4().hex[:6]}"
    await add_two_sided_model(publish, model, upstream)
    await call(router, model, "Complete")  # until the router knows the model
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.config.ports.router_grpc}") as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)

        async def served_by(**affinity: str) -> str:
            request = _session_request(model)
            for name, value in affinity.items():
                setattr(request, name, value)
            return (await stub.Complete(request, timeout=30)).finish.deployment_id

        by_key = {await served_by(prompt_cache_key="tg-conversation-1") for _ in range(12)}
        by_user = {await served_by(end_user="tg-end-user-9") for _ in range(12)}
        by_many = {await served_by(prompt_cache_key=f"tg-conversation-{i}") for i in range(24)}
    assert len(by_key) == 1 and len(by_user) == 1, (by_key, by_user)
    assert by_many == {f"{model}-a", f"{model}-b"}  # keys spread: each side leads for about half


async def test_a_parameter_one_deployment_does_not_take_goes_to_one_that_does(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    """One model at an Anthropic and an OpenAI-compatible deployment, equal weights: response_format
    is served every time (by the one that takes it), whichever the draw puts first."""
    model = f"mixed-{uuid.uuid4().hex[:6]}"
    entities: list[ModelEntry | DeploymentEntry] = [
        DeploymentEntry(id=f"{model}-an", model_id=model, backend="anthropic", endpoint=upstream.anthropic_base_url,
                        upstream_model=f"ok:{model}", weight=1),
        DeploymentEntry(id=f"{model}-oa", model_id=model, backend="openai", endpoint=upstream.openai_base_url,
                        upstream_model=f"ok:{model}", weight=1),
        ModelEntry(id=model, display_name=model, context_length=4096, max_output_tokens=512),
    ]
    await publish_in_order(publish, entities)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.config.ports.router_grpc}") as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        await call(router, model, "Complete")  # until the router knows the model
        finishes = []
        for i in range(12):
            whole = await stub.Complete(router_pb2.GenerateRequest(
                request_id=f"req_mixed_{i}", account_id="acct", model=model,
                chat=router_pb2.ChatInput(messages=[router_pb2.ChatMessage(role="user", content="Hello")]),
                sampling=router_pb2.SamplingParams(max_tokens=32),
                provider_options_json='{"response_format": {"type": "json_object"}}',
            ), timeout=30)
            finishes.append(whole.finish)
    assert all(f.deployment_id == f"{model}-oa" and f.attempts == 1 for f in finishes)
    sent = [r for r in upstream.requests_for(f"ok:{model}") if "response_format" in r["body"]]
    assert len(sent) == 12 and all(r["path"].endswith("/chat/completions") for r in sent)  # none to Anthropic


async def test_when_no_deployment_takes_a_parameter_the_error_names_it(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    """In the trailers of the one-call RPCs, as the Session's CallError carries it, so the client's
    400 says which parameter to drop."""
    model = f"refuses-{uuid.uuid4().hex[:6]}"
    await add_model(publish, model, upstream, ["ok"])
    await call(router, model, "Complete")  # until the router knows the model
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.config.ports.router_grpc}") as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Complete(router_pb2.GenerateRequest(
                request_id="req_refused", account_id="acct", model=model,
                chat=router_pb2.ChatInput(messages=[router_pb2.ChatMessage(role="user", content="Hello")]),
                sampling=router_pb2.SamplingParams(max_tokens=32, top_k=5),
            ), timeout=30)
    trailers = dict(refused.value.trailing_metadata() or ())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (trailers["tollgate-error-code"], trailers["tollgate-error-param"]) == ("unsupported_parameter", "top_k")


def _usage_missing(platform: Platform, deployment: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{platform.config.ports.router}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(f'tollgate_router_usage_missing_total{{deployment="{deployment}"}}'):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


@RPCS
async def test_an_answer_without_usage_is_counted_for_the_operator(
    router: Platform, publish: EventProducer, upstream: UpstreamServer, rpc: str
) -> None:
    """A server that ignores stream_options.include_usage: the answer is served, its tokens cannot be
    billed, and the operator can alert on the counter rather than find out from the invoice."""
    silent, reporting = f"nousage-{uuid.uuid4().hex[:6]}", f"usage-{uuid.uuid4().hex[:6]}"
    await add_model(publish, silent, upstream, ["ok-no-usage"])
    await add_model(publish, reporting, upstream, ["ok"])
    for model in (silent, reporting):
        deltas, finish, err = await call(router, model, rpc)
        assert err is None and finish is not None and deltas
    assert _usage_missing(router, f"{silent}-d0") == 1.0
    assert _usage_missing(router, f"{reporting}-d0") == 0.0


def _metric(platform: Platform, sample: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{platform.config.ports.router}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
    return None


async def test_the_provider_connection_pool_is_visible_in_metrics(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    """An operator sizing ROUTER_PROVIDER_MAX_CONNECTIONS sees the pool as it is when scraped."""
    model = f"pooled-{uuid.uuid4().hex[:6]}"
    await add_model(publish, model, upstream, ["ok"])
    _, finish, err = await call(router, model, "Complete")
    assert err is None and finish is not None
    assert (_metric(router, 'tollgate_router_provider_connections{state="open"}') or 0) >= 1
    assert (_metric(router, 'tollgate_router_provider_connections{state="idle"}') or 0) >= 1  # kept alive
    assert _metric(router, "tollgate_router_provider_requests_waiting") == 0


async def test_a_call_the_edge_stops_is_answered_with_what_its_generation_used(
    router: Platform, publish: EventProducer, upstream: UpstreamServer
) -> None:
    """The router process, its backends and the replayed providers: a cancelled call's generation is
    stopped, then accounted for. Anthropic said the prompt's tokens before any text; an OpenAI
    stream says them only at its end, so that prompt is unknown, and counted for the operator; an
    attempt still waiting for its first byte is named, with nothing used."""
    anthropic, openai, waiting = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("acct-an", "acct-oa", "acct-wait"))
    await add_model(publish, anthropic, upstream, ["slow-stream"], ["anthropic"])
    await add_model(publish, openai, upstream, ["slow-stream"])
    await add_model(publish, waiting, upstream, ["slow"])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.config.ports.router_grpc}") as channel:
        client = RouterClient(router_pb2_grpc.RouterServiceStub(channel), session=True)
        try:
            accounts: list[router_pb2.Finish] = []
            leaving = asyncio.create_task(_until_served(client, anthropic, accounts))
            await _upstream_answering(upstream, f"slow-stream:{anthropic}")
            await asyncio.sleep(0.6)  # a dozen of its 90 deltas, 50 ms apart
            leaving.cancel()  # the client left the non-streamed answer
            with pytest.raises(asyncio.CancelledError):
                await leaving
            [account] = accounts
            assert (account.finish_reason, account.deployment_id, account.provider) == (
                "cancelled", f"{anthropic}-d0", "anthropic")
            assert account.usage.input_tokens == 44  # from message_start, before the first text
            assert 3 <= account.usage.output_tokens < 90  # the deltas read until the cancel
            assert await _upstream_closed(upstream, f"slow-stream:{anthropic}")

            streaming = await _retry_not_found(lambda: client.stream(_session_request(openai), timeout=30))
            pieces = 0
            while pieces < 3:
                message = await streaming.first() if pieces == 0 else await anext(streaming.rest())
                pieces += len(message.delta.pieces) or 1
            stopped = await streaming.stop()
            assert stopped is not None and stopped.finish_reason == "cancelled"
            assert stopped.usage.input_tokens == 0 and pieces <= stopped.usage.output_tokens < 164
            assert _input_unknown(router, f"{openai}-d0") == 1.0
            assert _input_unknown(router, f"{anthropic}-d0") == 0.0

            accounts.clear()
            leaving = asyncio.create_task(_until_served(client, waiting, accounts))
            await _upstream_answering(upstream, f"slow:{waiting}")
            await asyncio.sleep(0.2)  # its answer comes after 5 s
            leaving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leaving
            [account] = accounts
            assert (account.deployment_id, account.attempts) == (f"{waiting}-d0", 1)
            assert account.usage.input_tokens == account.usage.output_tokens == 0
        finally:
            client.close()


async def _until_served(client: RouterClient, model: str, accounts: list[router_pb2.Finish]) -> None:
    """A non-streamed call, once the router has the model (its NOT_FOUND waited out)."""
    await _retry_not_found(lambda: client.complete(_session_request(model), 30, accounts.append))


async def _retry_not_found(make: Any) -> Any:
    deadline = time.monotonic() + 20
    while True:
        try:
            return await make()
        except NotFound:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)


async def _upstream_answering(upstream: UpstreamServer, model: str) -> None:
    deadline = time.monotonic() + 20
    while upstream.model_stats(model)["in_flight"] < 1:
        assert time.monotonic() < deadline, "the request never reached the provider"
        await asyncio.sleep(0.02)


async def _upstream_closed(upstream: UpstreamServer, model: str) -> bool:
    """The provider saw the connection go before its answer's end."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if upstream.model_stats(model).get("disconnects", 0) >= 1:
            return True
        await asyncio.sleep(0.05)
    return False


def _input_unknown(platform: Platform, deployment: str) -> float:
    return _metric(platform, f'tollgate_router_cancelled_input_unknown_total{{deployment="{deployment}"}}') or 0.0
