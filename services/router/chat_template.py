"""Chat templates applied by the router (self-hosted models take a prompt string, not messages).

Only ChatML for now (SmolLM2, Qwen, ...); the catalog entry names the template a model uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.router.backends import ChatTurn


def chatml(messages: Sequence[ChatTurn]) -> str:
    parts = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"
