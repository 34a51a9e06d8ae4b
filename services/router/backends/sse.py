"""Server-sent events as providers actually send them, shared by the provider backends.

We parse the stream ourselves rather than take a dependency: the format is a dozen lines of spec,
and owning it lets us be lenient exactly where real providers bend it (comment keep-alives such as
``: OPENROUTER PROCESSING``, a last event without its closing blank line) while a broken connection
still surfaces as the transport error it is.

The decoder is fed whatever one network read returned and hands back every event completed by it.
That is the router's unit of work on the hot path: the events of one read become one batch of text
pieces and one gRPC message to the edge, instead of an async step (and a message) per line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    event: str  # "message" when the server named none, as the spec says
    data: str


class SSEDecoder:
    """Incremental: bytes in (any split, any of CRLF, LF or CR line endings), whole events out."""

    def __init__(self) -> None:
        self._buffer = b""
        self._name = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk
        if buffer.endswith(b"\r"):
            # a CR may be the first half of a CRLF split across two reads: decide on the next read
            self._buffer, buffer = b"\r", buffer[:-1]
        else:
            self._buffer = b""
        lines = buffer.splitlines()
        if buffer and not buffer.endswith((b"\n", b"\r")):
            self._buffer = lines.pop() + self._buffer  # an unfinished line waits for the rest
        out: list[Event] = []
        for raw in lines:
            self._line(raw.decode("utf-8", errors="replace"), out)
        return out

    def close(self) -> list[Event]:
        """The end of the body. The spec drops an unterminated event; servers that omit the final
        blank line after ``[DONE]`` exist, and a truly cut stream is caught by the caller's
        end-marker check."""
        out: list[Event] = []
        if self._buffer.strip(b"\r"):
            self._line(self._buffer.strip(b"\r").decode("utf-8", errors="replace"), out)
        self._buffer = b""
        if self._data:
            out.append(Event(self._name or "message", "\n".join(self._data)))
        self._name, self._data = "", []
        return out

    def _line(self, line: str, out: list[Event]) -> None:
        if not line:
            if self._data:
                out.append(Event(self._name or "message", "\n".join(self._data)))
            self._name, self._data = "", []
            return
        if line.startswith(":"):
            return  # comment: keep-alive padding
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value
        # "id" and "retry" only matter to reconnecting browsers; we never resume a generation
