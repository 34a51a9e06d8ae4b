"""Free loopback ports, so that parallel runs (two `make test`, tests and `make run`) never collide.

Why not the kernel's pick (binding port 0 and releasing it): that port comes from the ephemeral
range, the range the kernel also draws the local port of every outgoing connection from. Between
our release and the server's bind, any client on the machine that opens a connection (a Kafka
client reconnecting, a connection pool growing) can take it as its local port, and the server then
fails with "address already in use" (seen in CI: an e2e stack's edge, and a router test's dead
port). Ports below the ephemeral range are never handed out implicitly: only another explicit bind
can take one. So we pick one there at random, check that it binds, and never hand the same port out
twice in a process; two runs collide only if they pick the same port within the same moment.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000  # below are well-known and registered services' ports (5432, 6379, 8000, 9092...)
MIN_CHOICE = 2_000  # fewer ports than this between LOWEST and the ephemeral range: let the kernel pick
ATTEMPTS = 200

_random = random.SystemRandom()  # tests seed the module's random; our picks must differ per process
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, outside the ephemeral range."""
    low, high = LOWEST, ephemeral_start()
    if high - low >= MIN_CHOICE:
        for _ in range(ATTEMPTS):
            port = _random.randrange(low, high)
            if port not in _handed_out and _binds(port):
                _handed_out.add(port)
                return port
    return _kernel_pick()


def ephemeral_start() -> int:
    """The first port the kernel may choose by itself (32768 on a default Linux)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _binds(port: int) -> bool:
    """Whether a listener could bind the port now. Without SO_REUSEADDR, so a port that a closed
    connection still holds (TIME_WAIT) counts as taken too."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _kernel_pick() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port
