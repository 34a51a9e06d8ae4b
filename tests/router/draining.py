"""Reading a backend's generation to its end, as the router's fallback loop does."""

from __future__ import annotations

from typing import Any

from services.common.errors import TollgateError
from services.router.backends import Outcome, ThinkingDelta, ToolCallDelta


async def drain(
    gen: Any, outcome: Outcome | None = None, fragments: list[ToolCallDelta] | None = None,
    thinking: list[ThinkingDelta] | None = None,
) -> tuple[list[str], BaseException | None]:
    """Deltas received, and the error that ended the stream (if any); with ``outcome``, the tool-call
    fragments each batch brought go to ``fragments`` and its pieces of thinking to ``thinking``."""
    got: list[str] = []
    try:
        async for batch in gen:
            taken = outcome.take_tool_deltas() if outcome is not None else []
            thought = outcome.take_thinking_deltas() if outcome is not None else []
            assert batch or taken or thought, "a batch is empty only when tool-call fragments or thinking wait"
            got.extend(batch)
            if fragments is not None:
                fragments.extend(taken)
            if thinking is not None:
                thinking.extend(thought)
    except TollgateError as exc:
        return got, exc
    return got, None
