"""An OpenAI-compatible stream's deltas beyond text: tool-call fragments and reasoning runs.

``openai_compat`` reads each chunk's ``delta``; what it carries besides ``content`` is put together
here, so that the reader stays one loop over events.
"""

from __future__ import annotations

from typing import Any

from services.router.backends import Outcome, ThinkingBlock, as_count
from services.router.backends.thinking import ThinkingAssembler
from services.router.backends.tool_call_fragments import ToolCallAssembler


def add_tool_call_fragments(deltas: Any, calls: ToolCallAssembler) -> None:
    """Each ``delta.tool_calls`` entry is a fragment of the call at its index (id and name first,
    arguments in pieces)."""
    if not isinstance(deltas, list):
        return
    for delta in deltas:
        if not isinstance(delta, dict):
            continue
        function = delta.get("function")
        function = function if isinstance(function, dict) else {}
        name, arguments = function.get("name"), function.get("arguments")
        calls.fragment(
            as_count(delta.get("index")), call_id=str(delta.get("id") or ""),
            name=str(name) if name else "", arguments=arguments if isinstance(arguments, str) else "",
        )


class ReasoningRuns:
    """The answer's reasoning as thinking blocks: one per run of reasoning, placed after the text and
    calls that came before it."""

    def __init__(self, outcome: Outcome, calls: ToolCallAssembler) -> None:
        self._thinking = ThinkingAssembler(outcome)
        self._calls = calls
        self._blocks = 0
        self._open = False  # reasoning came last: more of it grows the same block
        self._written = 0  # the answer's text so far, in code points
        self._calls_seen = 0

    def add(self, piece: str) -> None:
        calls = self._calls.count()
        if calls != self._calls_seen:
            self._open, self._calls_seen = False, calls  # a call came between: a new run
        if not piece:
            return
        if self._open:
            self._thinking.text(self._blocks - 1, piece)
            return
        self._thinking.start(self._blocks, offset=self._written, after_calls=calls, thinking=piece)
        self._blocks += 1
        self._open = True

    def after_text(self, text: str) -> None:
        self._written += len(text)
        self._open = False

    def blocks(self) -> list[ThinkingBlock]:
        return self._thinking.blocks()
