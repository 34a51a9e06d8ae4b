"""Is a Kafka-protocol broker ready? One Metadata request over a plain socket, no client library.

Shared by KafkaServer and TansuServer. Synchronous on purpose: ``wait_ready`` is called from fixtures
that may already run inside an event loop, where ``asyncio.run`` of an aiokafka client is impossible.
"""

from __future__ import annotations

import socket
import struct


def metadata_ready(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a live broker is listed and every partition of every topic has a leader.

    A raw Metadata v4 request rather than a client library: it is synchronous (callable from inside a
    running event loop) and takes milliseconds. A broker is listed only once registered and unfenced,
    i.e. able to serve produce and create-topic requests. Right after a restart a client may still get
    one NOT_LEADER_OR_FOLLOWER (the metadata cache is updated a moment before the replica manager
    takes leadership); Kafka clients retry that by design, so readiness does not wait for it.
    """
    client_id = b"tollgate-ready"
    # header v1: api_key=3 (Metadata), version=4, correlation id, client id; body: all topics (null)
    body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id + struct.pack(">ib", -1, 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size: int = struct.unpack(">i", _recv_exact(sock, 4))[0]
        r = _Reader(_recv_exact(sock, size))
    try:
        if r.int(">i") != 7:
            return False
        r.int(">i")  # throttle_time_ms
        brokers = r.int(">i")
        for _ in range(brokers):
            r.skip("i", "s", "i", "s")  # node_id, host, port, rack
        r.skip("s", "i")  # cluster_id, controller_id
        for _ in range(r.int(">i")):  # topics
            if r.int(">h") != 0:  # topic error
                return False
            r.skip("s", "b")  # name, is_internal
            for _ in range(r.int(">i")):  # partitions
                error, _index, leader = r.int(">h"), r.int(">i"), r.int(">i")
                r.skip("a", "a")  # replicas, isr
                if error != 0 or leader < 0:
                    return False
    except struct.error:
        return False
    return brokers >= 1


class _Reader:
    """Just enough of the Kafka wire format (non-flexible versions) to walk a Metadata response."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int(self, fmt: str) -> int:
        value: int = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def skip(self, *kinds: str) -> None:
        """Skip fields: i=int32, b=int8, s=(nullable) string, a=int32 array."""
        for kind in kinds:
            if kind in "sa":  # length first (read it before adding: int() moves pos)
                length = self.int(">h") if kind == "s" else 4 * self.int(">i")
                self.pos += max(length, 0)
            else:
                self.int(">" + kind)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        buf += chunk
    return bytes(buf)
