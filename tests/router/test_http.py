"""The router's provider HTTP client against a raw TCP server that closes keep-alive connections the
way real servers do: a request that meets a connection closed before any answer is sent once more on
a new one, and only once; idle connections leave the pool before the usual 5 s server timeout."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client import REGISTRY

from services.common.errors import RouterBusy, UpstreamError
from services.router.backends import http
from services.router.backends.provider_errors import UPSTREAM_CONNECTION_LOST

SSE = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"content-length: " + str(len(SSE)).encode() + b"\r\n\r\n" + SSE
)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """One request off the connection (its body read and dropped): its head, lower-cased."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.startswith(b"content-length:"))
    await reader.readexactly(length)
    return head


class _Server:
    """Answers ``answers_per_connection`` requests on each connection, then closes it on the next
    request without answering (what an idle timeout does to a request racing it)."""

    def __init__(self, answers_per_connection: int, reset: bool = False) -> None:
        self.answers_per_connection = answers_per_connection
        self.reset = reset  # close with a TCP reset instead of a clean FIN
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                await _read_request(reader)
                self.requests += 1
                if answered >= self.answers_per_connection:
                    if self.reset:
                        sock = writer.get_extra_info("socket")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return  # closed with the request unanswered
                writer.write(ANSWER)
                await writer.drain()
                answered += 1
        except asyncio.IncompleteReadError:
            return
        finally:
            writer.close()


def _answering(
    answer: bytes, heads: list[bytes] | None = None, gate: asyncio.Event | None = None
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A server answering every request with ``answer`` (once ``gate`` is set), keeping the heads."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await _read_request(reader)
                if heads is not None:
                    heads.append(head)
                if gate is not None:
                    await gate.wait()
                writer.write(answer)
                await writer.drain()
        except asyncio.IncompleteReadError:
            return
        finally:
            writer.close()

    return handle


async def _texts(session: http.ProviderHTTP, url: str) -> list[str]:
    texts: list[str] = []
    async for events in http.sse_batches(
        session, url, b'{"stream": true}', {"content-type": "application/json"},
        http.ReadWatch(http.ReadTimeouts(before_output=5, after_output=5)), ()
    ):
        texts += [e.data for e in events]
    return texts


def _resent() -> float:
    return REGISTRY.get_sample_value("tollgate_router_upstream_resent_total") or 0.0


@pytest.fixture(params=["fin", "reset"])
async def serving(request: pytest.FixtureRequest) -> AsyncIterator[tuple[_Server, asyncio.Server]]:
    server = _Server(answers_per_connection=1, reset=request.param == "reset")
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server, listening
    listening.close()
    await listening.wait_closed()


async def test_a_pooled_connection_closed_under_a_request_is_resent_on_a_new_one(
    serving: tuple[_Server, asyncio.Server],
) -> None:
    server, listening = serving
    url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/v1/chat/completions"
    resent = _resent()
    session = http.new_provider_http(max_connections=1)
    try:
        assert await _texts(session, url) == [SSE.split(b"\n\n")[0][6:].decode(), "[DONE]"]
        assert await _texts(session, url) == [SSE.split(b"\n\n")[0][6:].decode(), "[DONE]"]
    finally:
        await session.close()
    assert (server.connections, server.requests) == (2, 3)  # the second request met the closing one
    assert _resent() == resent + 1


async def test_a_connection_dropped_twice_is_the_providers_failure(
    serving: tuple[_Server, asyncio.Server],
) -> None:
    server, listening = serving
    url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/v1/chat/completions"
    session = http.new_provider_http(max_connections=1)
    try:
        await _texts(session, url)  # one pooled connection
        server.answers_per_connection = 0  # from now on every request: connection closed, no answer
        with pytest.raises(UpstreamError) as failure:
            await _texts(session, url)
    finally:
        await session.close()
    assert failure.value.code == UPSTREAM_CONNECTION_LOST  # for fallback to take over
    assert server.requests == 3  # the pooled one, sent once more on a new connection, not again


async def test_a_new_connection_closed_unanswered_is_not_resent(serving: tuple[_Server, asyncio.Server]) -> None:
    """Only a pooled connection can lose the keep-alive race; a new one closed under the request is
    the provider dropping it, and a POST is not sent twice on a guess."""
    server, listening = serving
    server.answers_per_connection = 0
    url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/v1/chat/completions"
    resent = _resent()
    session = http.new_provider_http(max_connections=1)
    try:
        with pytest.raises(UpstreamError) as failure:
            await _texts(session, url)
    finally:
        await session.close()
    assert failure.value.code == UPSTREAM_CONNECTION_LOST
    assert (server.connections, server.requests, _resent()) == (1, 1, resent)


async def test_the_resend_opens_a_connection_rather_than_taking_the_next_pooled_one(
    serving: tuple[_Server, asyncio.Server],
) -> None:
    """Connections released together (after a burst) are closed by the server's idle timeout
    together, so the next pooled connection is likely the next one closing. The resend must not
    take it."""
    server, listening = serving
    url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/v1/chat/completions"
    session = http.new_provider_http(max_connections=4)
    try:
        burst = await asyncio.gather(_texts(session, url), _texts(session, url))  # two pooled connections
        assert all(texts[-1] == "[DONE]" for texts in burst) and server.connections == 2
        assert (await _texts(session, url))[-1] == "[DONE]"  # a pooled one closes under it
    finally:
        await session.close()
    assert (server.connections, server.requests) == (3, 4)  # resent on a third connection, not the second


async def test_idle_connections_leave_the_pool_before_a_five_second_server_timeout() -> None:
    """aiohttp keeps an idle connection 15 s by default; uvicorn (vLLM) and Node close theirs after
    5 s, so a request sent after 4 to 5 idle seconds would race the server's close."""
    server = _Server(answers_per_connection=100)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/v1/chat/completions"
    session = http.new_provider_http(max_connections=1)
    try:
        await _texts(session, url)
        await _texts(session, url)
        assert server.connections == 1  # kept alive between requests
        await asyncio.sleep(http.KEEPALIVE_SECONDS + 0.2)
        assert http.KEEPALIVE_SECONDS < 5.0
        await _texts(session, url)
    finally:
        await session.close()
        listening.close()
        await listening.wait_closed()
    assert (server.connections, server.requests) == (2, 3)  # a new connection, nothing resent


async def test_cookies_a_provider_sets_are_never_sent_back() -> None:
    """One shared client serves every customer: a cookie kept from one answer would ride along with
    the next customer's request."""
    heads: list[bytes] = []
    with_cookie = ANSWER.replace(b"\r\n\r\n", b"\r\nset-cookie: __cf_bm=abc; path=/\r\n\r\n", 1)
    listening = await asyncio.start_server(_answering(with_cookie, heads=heads), "127.0.0.1", 0)
    # a host name, not an address: a cookie jar keeps no cookies for bare IP addresses
    url = f"http://localhost:{listening.sockets[0].getsockname()[1]}/v1/chat/completions"
    session = http.new_provider_http(max_connections=1)
    try:
        await _texts(session, url)
        await _texts(session, url)
    finally:
        await session.close()
        listening.close()
        await listening.wait_closed()
    assert len(heads) == 2
    assert not any(b"\r\ncookie:" in head for head in heads)


async def test_the_pool_metrics_read_its_state_when_scraped() -> None:
    release = asyncio.Event()
    listening = await asyncio.start_server(_answering(ANSWER, gate=release), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/v1/chat/completions"
    session = http.new_provider_http(max_connections=1)
    http.export_metrics(session)
    sample = REGISTRY.get_sample_value
    try:
        running = [asyncio.create_task(_texts(session, url)) for _ in range(3)]
        await asyncio.sleep(0.1)
        assert sample("tollgate_router_provider_connections", {"state": "open"}) == 1
        assert sample("tollgate_router_provider_requests_waiting") == 2  # the limit holds them back
        release.set()
        await asyncio.gather(*running)
        assert sample("tollgate_router_provider_requests_waiting") == 0
        assert sample("tollgate_router_provider_connections", {"state": "idle"}) == 1
    finally:
        await session.close()
        listening.close()
        await listening.wait_closed()


async def test_a_request_that_finds_no_free_connection_in_time_is_shed_as_the_routers_overload() -> None:
    """Not a provider failure (no breaker verdict), and counted for the operator."""
    release = asyncio.Event()
    listening = await asyncio.start_server(_answering(ANSWER, gate=release), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/v1/chat/completions"
    session = http.new_provider_http(max_connections=1, slot_wait=0.1)
    shed_before = REGISTRY.get_sample_value("tollgate_router_provider_requests_shed_total") or 0.0
    try:
        holding = asyncio.create_task(_texts(session, url))
        await asyncio.sleep(0.05)
        with pytest.raises(RouterBusy) as shed:
            await _texts(session, url)
        assert shed.value.retry_after == 1.0 and shed.value.http_status == 503
        assert REGISTRY.get_sample_value("tollgate_router_provider_requests_shed_total") == shed_before + 1
        release.set()
        assert await holding
    finally:
        await session.close()
        listening.close()
        await listening.wait_closed()
