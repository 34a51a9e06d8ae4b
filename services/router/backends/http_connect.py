"""Where a provider connection goes and how it is opened: the origin of a URL, a host's addresses
raced as RFC 8305 says, and the TLS context.

Why the race is ours: uvloop's ``create_connection`` tries a host's addresses one after another, so a
host whose IPv6 route is broken (the packets vanish instead of being refused) would spend the whole
connect timeout on its first, IPv6 address before trying IPv4.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import zip_longest
from typing import Any
from urllib.parse import urlsplit

HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried beside a silent one (RFC 8305)


@dataclass(frozen=True)
class Origin:
    """Where a connection goes; connections are pooled per origin."""

    tls: bool
    host: str
    port: int

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@lru_cache(maxsize=256)
def split_url(url: str) -> tuple[Origin, str]:
    """``(origin, request target)`` of an absolute ``http(s)`` URL; cached, since a deployment's few
    URLs are split on every request."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("provider URLs are absolute http or https URLs")
    tls = parts.scheme == "https"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Origin(tls, parts.hostname, parts.port or (443 if tls else 80)), target


AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


async def open_socket(host: str, port: int) -> socket.socket:
    """A connected TCP socket to the first of ``host``'s addresses that answers, trying them in
    turn and starting the next one ``HAPPY_EYEBALLS_DELAY`` seconds after the last (RFC 8305)."""
    loop = asyncio.get_running_loop()
    addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not addresses:
        raise OSError(f"no address for {host!r}")
    return await first_to_connect(interleaved(addresses))


async def first_to_connect(addresses: Sequence[AddressInfo]) -> socket.socket:
    """Connect to ``addresses`` in order, each started ``HAPPY_EYEBALLS_DELAY`` after the one before
    unless that one failed first; the first connected wins and the others are closed."""
    loop = asyncio.get_running_loop()
    infos = iter(addresses)
    attempts: set[asyncio.Task[socket.socket]] = set()
    errors: list[BaseException] = []
    winner: socket.socket | None = None
    try:
        while winner is None:
            info = next(infos, None)
            if info is not None:
                attempts.add(asyncio.create_task(_connect_to(loop, info)))
            if not attempts:
                break
            done, _ = await asyncio.wait(
                attempts, timeout=HAPPY_EYEBALLS_DELAY if info is not None else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for attempt in done:
                attempts.discard(attempt)
                failure = attempt.exception()
                if failure is not None:
                    errors.append(failure)
                elif winner is None:
                    winner = attempt.result()
                else:
                    attempt.result().close()
    finally:
        for attempt in attempts:
            attempt.cancel()
        for late in await asyncio.gather(*attempts, return_exceptions=True):
            if isinstance(late, socket.socket):
                late.close()  # connected just as it was cancelled
    if winner is None:
        raise errors[0] if errors else OSError("no address to connect to")
    return winner


def interleaved(infos: Sequence[AddressInfo]) -> list[AddressInfo]:
    """Addresses alternating between families, the resolver's first family first (RFC 8305)."""
    families: dict[socket.AddressFamily, list[AddressInfo]] = {}
    for info in infos:
        families.setdefault(info[0], []).append(info)
    return [info for group in zip_longest(*families.values()) for info in group if info is not None]


async def _connect_to(loop: asyncio.AbstractEventLoop, info: AddressInfo) -> socket.socket:
    family, kind, proto, _, address = info
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a request is one write; no waiting
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


@lru_cache(maxsize=1)
def default_tls() -> ssl.SSLContext:
    """The system's trust store (OpenSSL honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``), host names
    checked; built once, since building one reads every CA certificate."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context
