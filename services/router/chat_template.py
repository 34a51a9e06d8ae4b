"""Chat templates applied by the router: self-hosted models take one prompt string, not messages.

The catalog entry of a model names its template (``chat_template``); the router renders the
conversation with it before sending ``text_input`` to Triton. Templates are code here (an explicit
table, no Jinja from data), so a catalog edit can choose a template but never inject one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from services.common.errors import InvalidRequest
from services.router.backends import ChatTurn


def chatml(messages: Sequence[ChatTurn]) -> str:
    """ChatML (SmolLM2, Qwen, ...): ``<|im_start|>role\\ncontent<|im_end|>`` then the assistant cue."""
    parts = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


def llama3(messages: Sequence[ChatTurn]) -> str:
    """Llama 3 instruct format."""
    parts = [
        f"<|start_header_id|>{m.role}<|end_header_id|>\n\n{m.content}<|eot_id|>" for m in messages
    ]
    return "<|begin_of_text|>" + "".join(parts) + "<|start_header_id|>assistant<|end_header_id|>\n\n"


TEMPLATES: dict[str, Callable[[Sequence[ChatTurn]], str]] = {"chatml": chatml, "llama3": llama3}
DEFAULT_TEMPLATE = "chatml"


def render(template: str | None, messages: Sequence[ChatTurn]) -> str:
    renderer = TEMPLATES.get(template or DEFAULT_TEMPLATE)
    if renderer is None:
        raise InvalidRequest(f"This model's chat template {template!r} is not available; use completions.")
    return renderer(messages)
