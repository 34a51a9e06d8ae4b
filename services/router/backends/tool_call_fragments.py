"""One answer's tool calls, built from a provider's fragments, with the fragments queued for streaming.

Providers stream a call as fragments: OpenAI-compatible ones as ``delta.tool_calls`` entries keyed by
an index (id and name first, then pieces of the arguments), Anthropic as a ``tool_use`` block whose
input follows in ``input_json_delta`` pieces. The assembler keeps both what the caller streams and
what the Finish carries, and keeps them equal: a call's streamed fragments, joined, are its whole
arguments. Rules that hold it:

- A call without an id (some compatible servers leave it out) gets one when it is first seen, so the
  streamed id and the final one are the same.
- Fragments are streamed in order, and only while their call is the newest: a client API like
  Anthropic's writes calls as sequential blocks and cannot add to one it has closed. A provider that
  interleaves calls has every fragment from then on reach the caller in the Finish only.
- Indexes are ours, from 0 in the order calls first appear, whatever the provider numbered them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.router.backends import Outcome, ToolCall, ToolCallDelta


@dataclass
class _Call:
    index: int
    id: str
    name: str
    arguments: str


class ToolCallAssembler:
    def __init__(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._calls: dict[int, _Call] = {}  # by the provider's key for the call
        self._streaming = True

    def fragment(self, key: int, *, call_id: str = "", name: str = "", arguments: str = "") -> None:
        """A piece of the call the provider knows as ``key``."""
        call = self._calls.get(key)
        if call is None:
            call = _Call(len(self._calls), call_id or f"call_{uuid.uuid4().hex[:24]}", name, arguments)
            self._calls[key] = call
            self._stream(ToolCallDelta(call.index, call.id, name, arguments))
            return
        named = name if name and not call.name else ""
        call.name = call.name or name
        call.arguments += arguments
        if call.index != len(self._calls) - 1:
            self._streaming = False  # interleaved: an older call grows after a newer one started
        if named or arguments:
            self._stream(ToolCallDelta(call.index, "", named, arguments))

    def count(self) -> int:
        """How many calls have started so far."""
        return len(self._calls)

    def arguments_of(self, key: int) -> str | None:
        """The arguments so far of the call the provider knows as ``key``; None for no such call."""
        call = self._calls.get(key)
        return None if call is None else call.arguments

    def _stream(self, delta: ToolCallDelta) -> None:
        if self._streaming:
            self._outcome.tool_deltas.append(delta)

    def calls(self) -> list[ToolCall]:
        """Every call, whole, in our index order."""
        ordered = sorted(self._calls.values(), key=lambda c: c.index)
        return [ToolCall(c.id, c.name, c.arguments) for c in ordered]
