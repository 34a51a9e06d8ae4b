"""The incremental SSE decoder: the same events however the network splits the bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router.backends.sse import Event, SSEDecoder

STREAM = (
    ": OPENROUTER PROCESSING\n\n"
    "data: {\"a\":1}\n\n"
    "event: message_delta\ndata: {\"b\":\"é ünïcode\"}\n\n"
    "id: 7\nretry: 100\ndata: line one\ndata: line two\n\n"
    "data:no-space\n\n"
    "data: [DONE]\n\n"
).encode()
EXPECTED = [
    Event("message", '{"a":1}'),
    Event("message_delta", '{"b":"é ünïcode"}'),
    Event("message", "line one\nline two"),
    Event("message", "no-space"),
    Event("message", "[DONE]"),
]


def decode(chunks: list[bytes]) -> tuple[list[list[Event]], list[Event]]:
    decoder = SSEDecoder()
    per_read = [decoder.feed(chunk) for chunk in chunks]
    return per_read, [e for batch in per_read for e in batch] + decoder.close()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_split_point_gives_the_same_events(newline: bytes) -> None:
    data = STREAM.replace(b"\n", newline)
    for cut in range(len(data) + 1):
        _, events = decode([data[:cut], data[cut:]])
        assert events == EXPECTED, (newline, cut)


def test_byte_by_byte_equals_one_read() -> None:
    _, one = decode([STREAM])
    _, bytewise = decode([STREAM[i:i + 1] for i in range(len(STREAM))])
    assert one == bytewise == EXPECTED


def test_a_read_returns_exactly_the_events_it_completed() -> None:
    per_read, _ = decode([b'data: {"a":1}\n\ndata: x', b"\n", b"\n"])
    assert per_read == [[Event("message", '{"a":1}')], [], [Event("message", "x")]]


def test_an_unterminated_last_event_is_still_delivered_at_the_end() -> None:
    per_read, events = decode([b"data: [DONE]"])
    assert per_read == [[]] and events == [Event("message", "[DONE]")]


PIECES = [b'data: {"a":1}\n\n', b": ping\n\n", b"event: e\ndata: x\n\n", b"data: m1\ndata: m2\n\n", b"\n",
          b"data: [DONE]\n\n", b"id: 1\ndata: y\n\n", b"data:  two spaces\n\n", b"data: \xc3\xa9\n\n"]


@given(
    parts=st.lists(st.sampled_from(PIECES), max_size=12),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_any_stream_split_anywhere_decodes_as_one_read(parts: list[bytes], newline: bytes, cuts: list[int]) -> None:
    """Whatever the framing (LF, CRLF, CR) and wherever the reads split the bytes, the events are
    those of the CRLF framing of the same stream read at once."""
    _, reference = decode([b"".join(parts).replace(b"\n", b"\r\n")])
    data = b"".join(parts).replace(b"\n", newline)
    bounds = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    _, split = decode(chunks)
    assert split == reference
