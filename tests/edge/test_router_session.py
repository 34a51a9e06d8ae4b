"""The edge's router Session against a real gRPC server running the router's own session code
(``CallSession``) over scripted generations: many calls on one stream, each keeping the rules of its
own RPC (answers, errors, deadline, cancellation), and what happens when the router goes away,
drains, or does not know Session at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from services.common.errors import (
    DependencyUnavailable,
    NotFound,
    RateLimited,
    UpstreamTimeout,
)
from services.edge import session_call
from services.edge.dependencies import router_channel_options
from services.edge.router_client import RouterClient
from services.edge.router_session import FRAMES, MESSAGES
from services.edge.session_call import QUIET
from services.router.backends import Outcome
from services.router.fallback import Served
from services.router.session import CallSession
from tollgate.router.v1 import router_pb2, router_pb2_grpc

THINK_SECONDS = 0.5
QUIET_AFTER = 0.15  # three or so keep-alives per silence
CHAT_GAP_SECONDS = 0.03  # five times as often as QUIET_AFTER: never quiet
ACCOUNT_INPUT_TOKENS = 17


def _request(model: str, request_id: str = "req_1") -> router_pb2.GenerateRequest:
    return router_pb2.GenerateRequest(request_id=request_id, model=model, accepts_pieces=True)


def _finish(request_id: str) -> router_pb2.Finish:
    return router_pb2.Finish(
        finish_reason="stop", deployment_id=request_id, usage=router_pb2.Usage(output_tokens=2)
    )


class _Router(router_pb2_grpc.RouterServiceServicer):
    """The router's Session over generations scripted by model name:
    ``echo`` answers the request id, ``limited`` is rate limited before any text, ``slow`` sends one
    delta and then waits (until cancelled), ``hang`` never answers, ``thinking`` answers as ``echo``
    with a silence of ``THINK_SECONDS`` before its first delta and another before its second,
    ``chatty`` sends a delta every ``CHAT_GAP_SECONDS`` for a second."""

    def __init__(self, session: bool = True, hears_cancels: bool = True) -> None:
        self.session = session
        self.hears_cancels = hears_cancels  # False: cancel frames never reach the session (no account)
        self.stopped: list[str] = []
        self.sessions: list[CallSession] = []
        self.one_call_rpcs = 0
        self.answered = 0

    async def _wait_for_cancel(self, request_id: str) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.stopped.append(request_id)
            raise

    async def events(
        self, request: router_pb2.GenerateRequest, served: Served
    ) -> AsyncIterator[router_pb2.GenerateResponse]:
        if request.model == "limited":
            raise RateLimited("Slow down.", retry_after=7.0)
        if request.model == "missing":
            raise NotFound("No such model.", code="model_not_found")
        if request.model == "chatty":
            for _ in range(int(1 / CHAT_GAP_SECONDS)):
                await asyncio.sleep(CHAT_GAP_SECONDS)
                yield router_pb2.GenerateResponse(delta=router_pb2.Delta(text=".", output_tokens=1))
        if request.model == "thinking":
            await asyncio.sleep(THINK_SECONDS)
        yield router_pb2.GenerateResponse(delta=router_pb2.Delta(text=request.request_id, output_tokens=1))
        if request.model in ("slow", "hang"):
            await self._wait_for_cancel(request.request_id)
        if request.model == "thinking":
            await asyncio.sleep(THINK_SECONDS)
        yield router_pb2.GenerateResponse(delta=router_pb2.Delta(pieces=["!", "?"], output_tokens=2))
        yield router_pb2.GenerateResponse(finish=_finish(request.request_id))

    async def whole(self, request: router_pb2.GenerateRequest, served: Served) -> router_pb2.CompleteResponse:
        if request.model == "limited":
            raise RateLimited("Slow down.", retry_after=7.0)
        if request.model == "hang":
            await self._wait_for_cancel(request.request_id)
        self.answered += 1
        return router_pb2.CompleteResponse(text=request.request_id, finish=_finish(request.request_id))

    async def cancelled(self, request: router_pb2.GenerateRequest, served: Served) -> router_pb2.Finish:
        """The account of a cancelled call: who it was (the request id) and what it used, scripted."""
        return router_pb2.Finish(
            finish_reason="cancelled", deployment_id=request.request_id,
            usage=router_pb2.Usage(input_tokens=ACCOUNT_INPUT_TOKENS, output_tokens=1),
        )

    async def Session(self, request_iterator: Any, context: Any) -> None:  # noqa: N802 - gRPC name
        if not self.session:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        session = CallSession(self, context.write)
        self.sessions.append(session)
        await session.serve(request_iterator if self.hears_cancels else _without_cancels(request_iterator))

    async def Generate(  # noqa: N802 - gRPC method name
        self, request: router_pb2.GenerateRequest, context: Any
    ) -> AsyncIterator[router_pb2.GenerateResponse]:
        self.one_call_rpcs += 1
        async for message in self.events(request, Served(Outcome())):
            yield message

    async def Complete(self, request: router_pb2.GenerateRequest, context: Any) -> router_pb2.CompleteResponse:  # noqa: N802
        self.one_call_rpcs += 1
        return await self.whole(request, Served(Outcome()))


async def _without_cancels(incoming: AsyncIterator[router_pb2.EdgeFrames]) -> AsyncIterator[router_pb2.EdgeFrames]:
    async for message in incoming:
        yield router_pb2.EdgeFrames(frames=[f for f in message.frames if f.WhichOneof("frame") != "cancel"])


async def _serve(router: _Router, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    router_pb2_grpc.add_RouterServiceServicer_to_server(router, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, port


@pytest.fixture
async def served() -> AsyncIterator[tuple[_Router, RouterClient, grpc.aio.Server]]:
    router = _Router()
    server, port = await _serve(router)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    client = RouterClient(router_pb2_grpc.RouterServiceStub(channel), session=True)
    yield router, client, server
    client.close()
    await channel.close(None)
    await server.stop(None)


def _count(metric: Any, direction: str) -> float:
    value: float = metric.labels(direction)._value.get()
    return value


async def _streamed(client: RouterClient, model: str, request_id: str) -> list[str]:
    call = await client.stream(_request(model, request_id), timeout=10)
    texts = [(await call.first()).delta.text]
    async for message in call.rest():
        if message.HasField("finish"):
            assert message.finish.deployment_id == request_id
            texts.append("<finish>")
        else:
            texts.extend(message.delta.pieces)
    return texts


async def test_concurrent_calls_share_messages_and_each_gets_its_own_answer(served: Any) -> None:
    router, client, _ = served
    await client.complete(_request("echo", "req_open"), timeout=10)  # the session is open
    frames, messages = _count(FRAMES, "to_router"), _count(MESSAGES, "to_router")
    ids = [f"req_{i}" for i in range(100)]
    wholes, streams = await asyncio.gather(
        asyncio.gather(*(client.complete(_request("echo", rid), timeout=10) for rid in ids)),
        asyncio.gather(*(_streamed(client, "echo", rid + "s") for rid in ids)),
    )
    assert [w.text for w in wholes] == ids
    assert [w.finish.deployment_id for w in wholes] == ids
    assert streams == [[rid + "s", "!", "?", "<finish>"] for rid in ids]
    assert len(router.sessions) == 1  # one stream carried all 200 calls
    sent_frames = _count(FRAMES, "to_router") - frames
    sent_messages = _count(MESSAGES, "to_router") - messages
    assert sent_frames == 200
    assert sent_messages <= 4  # the starts ready together went out together


async def test_an_error_before_any_text_keeps_its_type_code_and_retry_after(served: Any) -> None:
    _, client, _ = served
    with pytest.raises(RateLimited) as limited:
        await client.complete(_request("limited"), timeout=10)
    assert limited.value.retry_after == 7.0
    assert limited.value.code == "rate_limit_exceeded"
    call = await client.stream(_request("missing"), timeout=10)
    with pytest.raises(NotFound) as missing:
        await call.first()
    assert missing.value.code == "model_not_found"
    assert (await client.complete(_request("echo", "req_after"), timeout=10)).text == "req_after"


async def test_cancelling_a_call_cancels_its_generation_and_nothing_else(served: Any) -> None:
    router, client, _ = served
    slow = await client.stream(_request("slow", "req_slow"), timeout=10)
    other = await client.stream(_request("slow", "req_other"), timeout=10)
    assert (await slow.first()).delta.text == "req_slow"
    assert (await other.first()).delta.text == "req_other"
    slow.cancel()
    await _until(lambda: router.stopped == ["req_slow"])
    waiting = asyncio.create_task(client.complete(_request("hang", "req_hang"), timeout=10))
    await _until(lambda: len(router.sessions[0]._running) == 2)
    waiting.cancel()  # the request handler's task cancelled: the client went away
    await _until(lambda: router.stopped == ["req_slow", "req_hang"])
    other.cancel()
    await _until(lambda: len(router.stopped) == 3)


async def test_a_call_past_its_deadline_times_out_and_is_cancelled_at_the_router(served: Any) -> None:
    router, client, _ = served
    with pytest.raises(UpstreamTimeout):
        await asyncio.wait_for(client.complete(_request("hang", "req_late"), timeout=0.3), 5)
    await _until(lambda: router.stopped == ["req_late"])
    call = await client.stream(_request("slow", "req_late_stream"), timeout=0.3)
    assert (await call.first()).delta.text == "req_late_stream"
    with pytest.raises(UpstreamTimeout):
        await asyncio.wait_for(_drain(call), 5)
    await _until(lambda: router.stopped == ["req_late", "req_late_stream"])


async def test_a_stopped_call_gets_the_routers_account_of_what_its_generation_used(served: Any) -> None:
    """What a cancelled RPC could never say: the router stops the generation, then reports its usage,
    streamed or not, and the edge's call waits for that before it settles."""
    router, client, _ = served
    streaming = await client.stream(_request("slow", "req_cut"), timeout=10)
    assert (await streaming.first()).delta.text == "req_cut"
    account = await asyncio.wait_for(streaming.stop(), 5)
    assert account is not None and account.finish_reason == "cancelled"
    assert (account.deployment_id, account.usage.input_tokens) == ("req_cut", ACCOUNT_INPUT_TOKENS)
    assert router.stopped == ["req_cut"]  # stopped at the router before its account was made
    accounts: list[router_pb2.Finish] = []
    waiting = asyncio.create_task(client.complete(_request("hang", "req_left"), 10, accounts.append))
    await _until(lambda: len(router.sessions[0]._running) == 1)
    waiting.cancel()  # the client left a non-streamed request
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert [(a.finish_reason, a.deployment_id) for a in accounts] == [("cancelled", "req_left")]
    finished = await client.stream(_request("echo", "req_done"), timeout=10)
    await finished.first()
    await _drain(finished)
    assert await finished.stop() is None  # over before the stop: nothing to account for
    assert client.sessions[0].open_calls == 0 and not router.sessions[0]._running


async def test_a_stopped_call_whose_account_does_not_come_settles_on_what_the_edge_saw(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A router from before the account, or one too slow to stop: the wait is bounded, and the call
    is forgotten all the same."""
    monkeypatch.setattr(session_call, "ACCOUNT_WAIT_SECONDS", 0.2)
    router = _Router(hears_cancels=False)
    server, port = await _serve(router)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    client = RouterClient(router_pb2_grpc.RouterServiceStub(channel), session=True)
    try:
        streaming = await client.stream(_request("slow", "req_deaf"), timeout=10)
        await streaming.first()
        started = asyncio.get_running_loop().time()
        assert await streaming.stop() is None
        assert 0.15 < asyncio.get_running_loop().time() - started < 2
        assert client.sessions[0].open_calls == 0
        waiting = await client.stream(_request("slow", "req_lost"), timeout=10)
        await waiting.first()
        stopping = asyncio.create_task(waiting.stop())
        await server.stop(None)  # the stream is lost while the call waits for its account
        assert await asyncio.wait_for(stopping, 5) is None
    finally:
        client.close()
        await channel.close(None)
        await server.stop(None)


async def test_a_router_that_goes_away_fails_its_calls_and_the_next_call_reopens() -> None:
    router = _Router()
    server, port = await _serve(router)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    client = RouterClient(router_pb2_grpc.RouterServiceStub(channel), session=True)
    try:
        streaming = await client.stream(_request("slow", "req_cut"), timeout=30)
        await streaming.first()
        waiting = asyncio.create_task(client.complete(_request("hang"), timeout=30))
        await _until(lambda: len(router.sessions[0]._running) == 2)
        await server.stop(None)
        with pytest.raises(DependencyUnavailable):
            await waiting
        with pytest.raises(DependencyUnavailable):
            async for _ in streaming.rest():
                pass
        with pytest.raises(DependencyUnavailable):  # nothing listens: a 503, as a failed RPC gives
            await client.complete(_request("echo"), timeout=5)
        server, _ = await _serve(router, port)
        reply = await _retrying(lambda: client.complete(_request("echo", "req_back"), timeout=5))
        assert reply.text == "req_back"
    finally:
        client.close()
        await channel.close(None)
        await server.stop(None)


async def test_a_draining_router_finishes_its_calls_and_new_ones_open_a_new_session(served: Any) -> None:
    router, client, _ = served
    running = await client.stream(_request("slow", "req_old"), timeout=10)
    await running.first()
    router.sessions[0].drain()
    await asyncio.sleep(0.1)  # the edge has read the draining message
    assert (await client.complete(_request("echo", "req_new"), timeout=10)).text == "req_new"
    assert len(router.sessions) == 2
    assert list(router.sessions[0]._running) == [1]  # the old call still runs on the old session
    running.cancel()
    await _until(lambda: not router.sessions[0]._running)


async def _heard(client: RouterClient, model: str, quiet_after: float | None) -> list[str]:
    """What a streamed call gives, quiet spells included ("~")."""
    call = await client.stream(_request(model, "req_q"), timeout=10, quiet_after=quiet_after)
    heard = [await call.first()]
    heard += [message async for message in call.rest()]
    call.cancel()
    return ["~" if m is QUIET else "<finish>" if m.HasField("finish") else m.delta.text + "".join(m.delta.pieces)
            for m in heard]


def _spells(heard: list[str]) -> list[int]:
    """The number of quiet marks before each message."""
    counts, run = [], 0
    for item in heard:
        if item == "~":
            run += 1
        else:
            counts.append(run)
            run = 0
    return counts


@pytest.mark.parametrize("session", [True, False], ids=["session", "one-rpc"])
async def test_a_quiet_stream_says_so_and_goes_on(session: bool) -> None:
    router = _Router(session=session)
    server, port = await _serve(router)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            client = RouterClient(router_pb2_grpc.RouterServiceStub(channel), session=session)
            heard = await _heard(client, "thinking", QUIET_AFTER)
            chatty = await _heard(client, "chatty", QUIET_AFTER)
            unasked = await _heard(client, "thinking", None)
            client.close()
    finally:
        await server.stop(None)
    assert [item for item in heard if item != "~"] == ["req_q", "!?", "<finish>"]
    before_first, before_second, before_finish = _spells(heard)
    # 0.5 s of silence, a mark every 0.15 s of it: 3 (2 to 5 on a loaded host: late timers, long sleeps)
    assert 2 <= before_first <= 5 and 2 <= before_second <= 5 and before_finish == 0
    assert "~" not in chatty and chatty.count(".") == int(1 / CHAT_GAP_SECONDS)
    assert unasked == ["req_q", "!?", "<finish>"]
    assert router.one_call_rpcs == (0 if session else 3)


async def test_a_router_without_session_is_called_one_rpc_per_request() -> None:
    router = _Router(session=False)
    server, port = await _serve(router)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            client = RouterClient(router_pb2_grpc.RouterServiceStub(channel), session=True)
            replies = [await client.complete(_request("echo", f"req_{i}"), timeout=10) for i in range(3)]
            assert client.sessions and client.sessions[0].legacy
            client.close()
    finally:
        await server.stop(None)
    assert [r.text for r in replies] == ["req_0", "req_1", "req_2"]
    assert router.one_call_rpcs == 3


async def _drain(call: Any) -> None:
    async for _ in call.rest():
        pass


async def _until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def _retrying(make: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await make()
        except DependencyUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.parametrize(("sessions", "spread"), [(2, True), (1, False)])
async def test_several_sessions_spread_one_edges_calls_over_the_routers(sessions: int, spread: bool) -> None:
    """One session sits on one router (pick first). Several, on a round-robin channel, move to the
    next router as they age: even though they all open at once, on whichever router connected first,
    the calls soon reach every router, and none is lost on the way."""
    routers = [_Router(), _Router()]
    servers = [await _serve(router) for router in routers]
    target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for _, port in servers)
    channel = grpc.aio.insecure_channel(target, options=router_channel_options(sessions))
    client = RouterClient(router_pb2_grpc.RouterServiceStub(channel), session=True, sessions=sessions,
                          rehome_seconds=0.05)
    answers: list[router_pb2.CompleteResponse] = []
    try:
        for wave in range(8):
            answers += await asyncio.gather(*(
                client.complete(_request("echo", f"req_{wave}_{i}"), 5) for i in range(10)))
            await asyncio.sleep(0.1)
    finally:
        client.close()
        await channel.close(None)
        for server, _ in servers:
            await server.stop(None)
    assert sorted(a.text for a in answers) == sorted(f"req_{w}_{i}" for w in range(8) for i in range(10))
    assert sum(r.answered for r in routers) == 80
    assert all(r.answered for r in routers) is spread, [r.answered for r in routers]


async def test_a_new_call_goes_to_the_session_with_the_fewest_calls_running() -> None:
    """A slow router keeps its calls longer; taking turns would still give it every other new call."""
    router = _Router()
    server, port = await _serve(router)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    client = RouterClient(router_pb2_grpc.RouterServiceStub(channel), session=True, sessions=2,
                          rehome_seconds=3600)
    calls = []
    try:
        calls.append(await client.stream(_request("hang", "req_slow_1"), 10))  # the first session
        assert (await calls[0].first()).delta.text == "req_slow_1"
        assert (await client.complete(_request("echo", "req_quick"), 5)).text == "req_quick"  # the second
        calls.append(await client.stream(_request("hang", "req_slow_2"), 10))  # its turn: the first again
        assert (await calls[1].first()).delta.text == "req_slow_2"
        assert len(router.sessions) == 2
        assert sorted(len(s._running) for s in router.sessions) == [1, 1]  # not [0, 2]
    finally:
        for call in calls:
            call.cancel()
        client.close()
        await channel.close(None)
        await server.stop(None)
