"""The provider HTTP/1.1 client against raw TCP (and TLS) servers that answer byte for byte: framing,
encodings, malformed answers, the pool's limits and idle handling, backpressure, and an answer left
early closing its connection."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from services.router.backends import http_client
from services.router.backends.http_client import (
    BadResponse,
    ConnectFailed,
    ConnectionBroken,
    Pool,
    Response,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request off the connection: its head (lower-cased) and its body."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.startswith(b"content-length:"))
    return head, await reader.readexactly(length)


def answer(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    lines = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n{lines}\r\n".encode() + body


class Server:
    """Answers each request with what ``reply`` writes; counts connections and requests."""

    def __init__(self, reply: Callable[[asyncio.StreamWriter, bytes], Awaitable[bool]]) -> None:
        self.reply = reply  # returns False to close the connection after this answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()  # some connection ended (our client closed it, or we did)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head, body = await read_request(reader)
                self.requests.append(head + body)
                if not await self.reply(writer, body):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.closed.set()
            writer.close()


async def serve(server: Server, tls: ssl.SSLContext | None = None) -> tuple[asyncio.Server, str]:
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    scheme = "https" if tls else "http"
    return listening, f"{scheme}://127.0.0.1:{listening.sockets[0].getsockname()[1]}/v1/x?a=1"


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    async with Pool(max_connections=4, keepalive=4.0, connect_timeout=2.0) as p:
        yield p


def fixed(data: bytes, keep: bool = True) -> Callable[[asyncio.StreamWriter, bytes], Awaitable[bool]]:
    async def reply(writer: asyncio.StreamWriter, _body: bytes) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return reply


async def body_of(response: Response) -> bytes:
    async with response:
        return await response.read(1 << 30)


async def test_request_head_and_content_length_body(pool: Pool) -> None:
    server = Server(fixed(answer(b'{"ok":1}', "x-request-id: r1", "set-cookie: a=1", "set-cookie: b=2")))
    listening, url = await serve(server)
    async with listening:
        response = await pool.request("POST", url, {"authorization": "Bearer k"}, b'{"q":1}')
        assert (response.status, await body_of(response)) == (200, b'{"ok":1}')
        assert response.headers["x-request-id"] == "r1" and response.headers["set-cookie"] == "a=1, b=2"
    head = server.requests[0]
    assert head.startswith(b"post /v1/x?a=1 http/1.1\r\nhost: 127.0.0.1:")
    assert b"authorization: bearer k\r\n" in head and b"accept-encoding: identity\r\n" in head
    assert head.endswith(b'\r\n\r\n{"q":1}')
    assert pool.idle_connections == pool.open_connections == 1  # kept alive


async def test_chunked_body_arrives_as_it_is_sent(pool: Pool) -> None:
    gate = asyncio.Event()

    async def reply(writer: asyncio.StreamWriter, _body: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await gate.wait()
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        await writer.drain()
        return True

    listening, url = await serve(Server(reply))
    async with listening:
        async with await pool.request("POST", url, {}) as response:
            assert await response.read_some() == b"hello"  # before the rest was even written
            gate.set()
            assert await response.read_some() == b" world"
            assert await response.read_some() == b""
        assert pool.idle_connections == 1


async def test_a_body_ended_by_the_close_is_complete_and_its_connection_not_reused(pool: Pool) -> None:
    server = Server(fixed(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end", keep=False))
    listening, url = await serve(server)
    async with listening:
        assert await body_of(await pool.request("GET", url, {})) == b"until the end"
        assert await body_of(await pool.request("GET", url, {})) == b"until the end"
    assert server.connections == 2
    await asyncio.sleep(0.05)
    assert pool.open_connections == 0


async def test_connection_close_answers_leave_the_pool(pool: Pool) -> None:
    server = Server(fixed(answer(b"x", "connection: close"), keep=False))
    listening, url = await serve(server)
    async with listening:
        assert await body_of(await pool.request("GET", url, {})) == b"x"
        await asyncio.sleep(0.05)
        assert (pool.idle_connections, pool.open_connections) == (0, 0)
        assert await body_of(await pool.request("GET", url, {})) == b"x"
    assert server.connections == 2


async def test_a_compressed_answer_is_decoded_and_an_unknown_encoding_refused(pool: Pool) -> None:
    text = b'{"error": {"message": "' + b"x" * 5000 + b'"}}'
    listening, url = await serve(Server(fixed(answer(gzip.compress(text), "content-encoding: gzip"))))
    async with listening:
        assert await body_of(await pool.request("GET", url, {})) == text
    listening, url = await serve(Server(fixed(answer(b"...", "content-encoding: br"))))
    async with listening:
        with pytest.raises(BadResponse, match="content-encoding 'br'"):
            await pool.request("GET", url, {})


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 abc OK\r\n\r\n",  # not a status code
        b"SMTP ready\r\n\r\n",  # not HTTP at all
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\n12345",  # two framings
        b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (70 * 1024) + b"\r\n\r\n",  # a head over 64 KB
    ],
)
async def test_malformed_answers_are_bad_responses(pool: Pool, raw: bytes) -> None:
    listening, url = await serve(Server(fixed(raw)))
    async with listening:
        with pytest.raises(BadResponse):
            await pool.request("POST", url, {})
    await asyncio.sleep(0.05)
    assert pool.open_connections == 0


async def test_an_informational_answer_is_skipped(pool: Pool) -> None:
    listening, url = await serve(Server(fixed(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"done"))))
    async with listening:
        response = await pool.request("POST", url, {})
        assert (response.status, await body_of(response)) == (200, b"done")


@pytest.mark.parametrize("header", [{"x-a": "v\r\nx-injected: 1"}, {"x-a\r\nx-b": "v"}, {"x-a": "v\x00"}])
async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(
    pool: Pool, header: dict[str, str]
) -> None:
    server = Server(fixed(answer(b"x")))
    listening, url = await serve(server)
    async with listening:
        with pytest.raises(ValueError, match="line break"):
            await pool.request("POST", url, header)
    assert server.connections == 0 and pool.open_connections == 0


async def test_the_pool_never_opens_more_than_its_limit_and_queues_the_rest() -> None:
    inside = 0
    most = 0

    async def reply(writer: asyncio.StreamWriter, _body: bytes) -> bool:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.02)
        inside -= 1
        writer.write(answer(b"x"))
        await writer.drain()
        return True

    server = Server(reply)
    listening, url = await serve(server)
    async with listening, Pool(max_connections=2, keepalive=4.0, connect_timeout=2.0) as pool:
        async def get() -> bytes:
            return await body_of(await pool.request("GET", url, {}))

        bodies = await asyncio.gather(*(get() for _ in range(8)))
        assert bodies == [b"x"] * 8
        assert (server.connections, most, pool.open_connections) == (2, 2, 2)


def answering_once(release: asyncio.Event) -> Callable[[asyncio.StreamWriter, bytes], Awaitable[bool]]:
    """A reply handler that answers ``x`` once ``release`` is set, keeping its connection meanwhile."""

    async def reply(writer: asyncio.StreamWriter, _body: bytes) -> bool:
        await release.wait()
        writer.write(answer(b"x"))
        await writer.drain()
        return True

    return reply


async def test_a_request_cancelled_while_queued_leaves_the_queue_working() -> None:
    release = asyncio.Event()
    listening, url = await serve(Server(answering_once(release)))
    async with listening, Pool(max_connections=1, keepalive=4.0, connect_timeout=2.0) as pool:
        first = asyncio.create_task(pool.request("GET", url, {}))
        queued = asyncio.create_task(pool.request("GET", url, {}))
        await asyncio.sleep(0.05)
        queued.cancel()
        release.set()
        assert await body_of(await first) == b"x"
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert await body_of(await pool.request("GET", url, {})) == b"x"  # the slot came back


async def test_a_request_that_waits_past_slot_wait_gives_up_and_leaves_the_queue_working() -> None:
    """The router's own limit sheds load in ``slot_wait`` seconds, not after the provider's 300 s
    first-output limit, and the queue keeps working for the requests after it."""
    release = asyncio.Event()
    listening, url = await serve(Server(answering_once(release)))
    async with listening, Pool(max_connections=1, keepalive=4.0, connect_timeout=2.0, slot_wait=0.2) as pool:
        first = asyncio.create_task(pool.request("GET", url, {}))
        await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        with pytest.raises(http_client.PoolFull):
            await pool.request("GET", url, {})
        assert 0.15 < asyncio.get_running_loop().time() - started < 1.0
        assert pool.waiting_requests == 0
        later = asyncio.create_task(pool.request("GET", url, {}))  # waits, within its own 0.2 s
        await asyncio.sleep(0.05)
        release.set()
        assert await body_of(await first) == b"x"
        assert await body_of(await asyncio.wait_for(later, 2)) == b"x"


async def test_at_the_limit_an_idle_connection_to_another_origin_makes_room() -> None:
    one, url_one = await serve(Server(fixed(answer(b"1"))))
    two, url_two = await serve(Server(fixed(answer(b"2"))))
    async with one, two, Pool(max_connections=1, keepalive=4.0, connect_timeout=2.0) as pool:
        assert await body_of(await pool.request("GET", url_one, {})) == b"1"
        assert await asyncio.wait_for(body_of(await pool.request("GET", url_two, {})), 2) == b"2"
        await asyncio.sleep(0.05)
        assert pool.open_connections == 1


async def test_leaving_an_answer_early_closes_its_connection_at_once(pool: Pool) -> None:
    """What makes a provider stop generating when our client goes away."""
    stopped = asyncio.Event()

    async def reply(writer: asyncio.StreamWriter, _body: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            for _ in range(200):
                writer.write(b"6\r\ntoken \r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            stopped.set()
        return False

    server = Server(reply)
    listening, url = await serve(server)
    async with listening:
        async with await pool.request("POST", url, {}) as response:
            assert (await response.read_some()).startswith(b"token")
        await asyncio.wait_for(server.closed.wait(), 2)
        await asyncio.wait_for(stopped.wait(), 2)
    assert pool.open_connections == 0


async def test_a_cut_answer_is_a_broken_connection(pool: Pool) -> None:
    listening, url = await serve(Server(fixed(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this", keep=False)))
    async with listening:
        async with await pool.request("POST", url, {}) as response:
            with pytest.raises(ConnectionBroken):
                while await response.read_some():
                    pass


async def test_a_fast_answer_nobody_reads_pauses_the_socket() -> None:
    """A provider faster than its reader must not grow the router's memory without bound."""
    size = 16 << 20
    listening, url = await serve(Server(fixed(answer(b"z" * size))))
    async with listening, Pool(max_connections=1, keepalive=4.0, connect_timeout=2.0) as pool:
        async with await pool.request("GET", url, {}) as response:
            await asyncio.sleep(0.3)
            connection = response._connection
            assert connection._paused and connection._buffered < http_client.READ_BUFFER_LIMIT + (1 << 20)
            total = 0
            while piece := await response.read_some():
                total += len(piece)
            assert total == size


async def test_idle_connections_are_closed_after_keepalive() -> None:
    server = Server(fixed(answer(b"x")))
    listening, url = await serve(server)
    async with listening, Pool(max_connections=4, keepalive=0.2, connect_timeout=2.0) as pool:
        assert await body_of(await pool.request("GET", url, {})) == b"x"
        assert pool.idle_connections == 1
        await asyncio.wait_for(server.closed.wait(), 2)  # closed by our sweep, not by a request
        await asyncio.sleep(0.05)
        assert (pool.idle_connections, pool.open_connections) == (0, 0)


async def test_bytes_on_an_idle_connection_retire_it(pool: Pool) -> None:
    """A server may say something (a 408) before closing an idle connection; that connection is
    not handed to the next request."""

    async def reply(writer: asyncio.StreamWriter, _body: bytes) -> bool:
        writer.write(answer(b"x"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(answer(b"timeout", status="408 Request Timeout"))
        await writer.drain()
        return True

    server = Server(reply)
    listening, url = await serve(server)
    async with listening:
        assert await body_of(await pool.request("GET", url, {})) == b"x"
        await asyncio.sleep(0.2)
        assert pool.idle_connections == 0
        assert await body_of(await pool.request("GET", url, {})) == b"x"
    assert server.connections == 2


async def test_nothing_listening_is_a_connect_failure(pool: Pool) -> None:
    listening, url = await serve(Server(fixed(b"")))
    listening.close()
    await listening.wait_closed()
    with pytest.raises(ConnectFailed):
        await pool.request("GET", url, {})
    assert pool.open_connections == 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


async def test_https_is_verified(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    server = Server(fixed(answer(b"secure")))
    listening, url = await serve(server, tls=serving)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with listening:
        async with Pool(max_connections=2, keepalive=4.0, connect_timeout=2.0, tls=trusting) as pool:
            assert await body_of(await pool.request("GET", url, {})) == b"secure"
            assert await body_of(await pool.request("GET", url, {})) == b"secure"
        assert server.connections == 1  # kept alive over TLS too
        async with Pool(max_connections=2, keepalive=4.0, connect_timeout=2.0) as pool:  # the system's CAs
            with pytest.raises(ConnectFailed) as failure:
                await pool.request("GET", url, {})
            assert isinstance(failure.value.__cause__, ssl.SSLCertVerificationError)


def test_urls() -> None:
    origin, target = http_client.split_url("https://api.example.com/v1/chat/completions")
    assert (origin.tls, origin.host, origin.port, origin.host_header, target) == (
        True, "api.example.com", 443, "api.example.com", "/v1/chat/completions")
    origin, target = http_client.split_url("http://[::1]:8000")
    assert (origin.host_header, target) == ("[::1]:8000", "/")
    with pytest.raises(ValueError):
        http_client.split_url("ftp://example.com/")


def _address(port: int, host: str = "127.0.0.1") -> http_client.AddressInfo:
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))


def _silent_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket whose accept queue is full: Linux drops further SYNs without an answer,
    so a connect to it hangs, as one to an address behind a broken route does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):  # more than the queue holds (backlog + 1), none accepted
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    return listener, fillers


async def test_a_silent_address_does_not_hold_up_the_next_one() -> None:
    """uvloop tries a host's addresses one after another: a broken IPv6 route would cost the whole
    connect timeout before IPv4 is tried. Here the next address starts 0.25 s later and wins."""
    listener, fillers = _silent_listener()
    server = Server(fixed(answer(b"x")))
    listening, _ = await serve(server)
    good = listening.sockets[0].getsockname()[1]
    try:
        async with listening:
            started = asyncio.get_running_loop().time()
            sock = await asyncio.wait_for(
                http_client.first_to_connect([_address(listener.getsockname()[1]), _address(good)]), 3
            )
            waited = asyncio.get_running_loop().time() - started
            assert sock.getpeername()[1] == good
            assert http_client.HAPPY_EYEBALLS_DELAY <= waited < 1.5
            sock.close()
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_refused_address_moves_on_at_once_and_all_refused_is_an_error() -> None:
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    listening, _ = await serve(Server(fixed(answer(b"x"))))
    good = listening.sockets[0].getsockname()[1]
    try:
        async with listening:
            started = asyncio.get_running_loop().time()
            sock = await http_client.first_to_connect([_address(refused.getsockname()[1]), _address(good)])
            assert asyncio.get_running_loop().time() - started < http_client.HAPPY_EYEBALLS_DELAY
            sock.close()
        with pytest.raises(ConnectionRefusedError):
            await http_client.first_to_connect([_address(refused.getsockname()[1])])
    finally:
        refused.close()


def test_addresses_alternate_between_families() -> None:
    v6 = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (f"::{n}", 443, 0, 0)) for n in (1, 2)]
    v4 = [_address(443, f"10.0.0.{n}") for n in (1, 2, 3)]
    order = http_client.interleaved([*v6, *v4])
    assert [info[4][0] for info in order] == ["::1", "10.0.0.1", "::2", "10.0.0.2", "10.0.0.3"]


async def test_bytes_after_an_answer_retire_its_connection(pool: Pool) -> None:
    """More than the answer framed (a broken server): the connection is out of step, never reused,
    and the answer itself is still read whole."""
    server = Server(fixed(answer(b"x") + b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\ny"))
    listening, url = await serve(server)
    async with listening:
        assert await body_of(await pool.request("GET", url, {})) == b"x"
        await asyncio.sleep(0.05)
        assert await body_of(await pool.request("GET", url, {})) == b"x"
    assert server.connections == 2
