"""Server-sent events as providers actually send them, shared by the provider backends.

We parse the stream ourselves rather than take a dependency: the format is a dozen lines of spec,
and owning it lets us be lenient exactly where real providers bend it (comment keep-alives such as
``: OPENROUTER PROCESSING``, a last event without its closing blank line) while a broken connection
still surfaces as the transport error it is.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    event: str  # "message" when the server named none, as the spec says
    data: str


async def events(lines: AsyncIterator[str]) -> AsyncGenerator[Event, None]:
    """Group ``lines`` (already split, line endings removed) into events."""
    name = ""
    data: list[str] = []
    try:
        async for line in lines:
            if not line:
                if data:
                    yield Event(name or "message", "\n".join(data))
                name, data = "", []
                continue
            if line.startswith(":"):
                continue  # comment: keep-alive padding
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                name = value
            # "id" and "retry" only matter to reconnecting browsers; we never resume a generation
    finally:
        close = getattr(lines, "aclose", None)
        if close is not None:
            await close()  # closing us early must not leave the line reader suspended
    if data:
        # The spec drops an unterminated event; servers that omit the final blank line after
        # ``[DONE]`` exist, and a truly cut stream is caught by the caller's end-marker check.
        yield Event(name or "message", "\n".join(data))
