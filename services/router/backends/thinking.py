"""One answer's extended thinking, built from Anthropic's stream, with the pieces queued for streaming.

Anthropic streams a thinking block as ``content_block_start`` (an empty ``thinking`` block), then
``thinking_delta`` pieces of its text and one ``signature_delta`` at its end; a ``redacted_thinking``
block comes whole in its ``content_block_start``. The assembler keeps what the caller streams and what
the Finish carries equal (a block's pieces, joined, are the block), and numbers blocks from 0 in the
order they open, whatever their content index. Each block remembers where it came among the answer's
text and tool calls, so that a non-streamed answer lists its content in the model's order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.router.backends import Outcome, ThinkingBlock, ThinkingDelta


@dataclass
class _Block:
    index: int
    whole: ThinkingBlock
    text: list[str]


class ThinkingAssembler:
    def __init__(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._blocks: dict[int, _Block] = {}  # by the provider's content index

    def start(self, key: int, *, offset: int, after_calls: int, thinking: str = "", signature: str = "",
              redacted: str = "") -> None:
        """A block opens at the provider's content index ``key``; ``offset`` and ``after_calls`` say where
        (the answer's text so far, in code points, and its calls so far)."""
        block = _Block(len(self._blocks), ThinkingBlock(
            signature=signature, redacted=redacted, offset=offset, after_calls=after_calls,
        ), [thinking] if thinking else [])
        self._blocks[key] = block
        self._outcome.thinking_deltas.append(ThinkingDelta(block.index, thinking, signature, redacted))

    def knows(self, key: int) -> bool:
        return key in self._blocks

    def text(self, key: int, piece: str) -> None:
        block = self._blocks[key]
        block.text.append(piece)
        self._outcome.thinking_deltas.append(ThinkingDelta(block.index, thinking=piece))

    def signature(self, key: int, signature: str) -> None:
        """The block's signature; a second one replaces the first, as Anthropic's SDK takes it."""
        block = self._blocks[key]
        block.whole = replace(block.whole, signature=signature)
        self._outcome.thinking_deltas.append(ThinkingDelta(block.index, signature=signature))

    def blocks(self) -> list[ThinkingBlock]:
        """Every block, whole, in the order they opened."""
        ordered = sorted(self._blocks.values(), key=lambda b: b.index)
        return [replace(b.whole, thinking="".join(b.text)) for b in ordered]
