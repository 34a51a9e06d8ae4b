"""Loopback ports for test servers: outside the range the kernel hands to outgoing connections, so a
client connecting elsewhere cannot take a port between its pick and the server's bind."""

from __future__ import annotations

import socket

import pytest

from infra.stack import ports


def test_ports_come_from_below_the_ephemeral_range_and_are_never_repeated() -> None:
    picked = [ports.free_port() for _ in range(200)]
    assert len(set(picked)) == len(picked)
    assert all(ports.LOWEST <= port < ports.ephemeral_start() for port in picked)


def test_a_picked_port_binds_and_a_bound_one_counts_as_taken() -> None:
    port = ports.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", port))  # what the server does with it
        listener.listen()
        assert ports.port_open(port)
        assert not ports._binds(port)


def test_the_kernel_picks_when_no_range_is_left_below_the_ephemeral_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_start", lambda: ports.LOWEST + 10)
    port = ports.free_port()
    assert port >= ports.LOWEST + 10 and ports._binds(port)
