"""Reading a backend's generation to its end, as the router's fallback loop does."""

from __future__ import annotations

from typing import Any

from services.common.errors import TollgateError
from services.router.backends import Outcome, ToolCallDelta


async def drain(
    gen: Any, outcome: Outcome | None = None, fragments: list[ToolCallDelta] | None = None
) -> tuple[list[str], BaseException | None]:
    """Deltas received, and the error that ended the stream (if any); with ``outcome``, the tool-call
    fragments each batch brought go to ``fragments``."""
    got: list[str] = []
    try:
        async for batch in gen:
            taken = outcome.take_tool_deltas() if outcome is not None else []
            assert batch or taken, "a batch is empty only when tool-call fragments wait"
            got.extend(batch)
            if fragments is not None:
                fragments.extend(taken)
    except TollgateError as exc:
        return got, exc
    return got, None
