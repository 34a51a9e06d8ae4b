"""OpenAI's ``reasoning_effort`` on an Anthropic model: extended thinking with a budget.

A Chat Completions or Responses client asks an OpenAI reasoning model to think harder with one word;
Claude takes a token budget. The budget is a share of the request's output limit, as OpenRouter maps
it (``high`` 80 %, ``medium`` 50 %, ``low`` 20 %; OpenAI's newer ``xhigh`` 95 %), because the limit
is what the client said it will pay for and OpenAI counts reasoning inside it too; it stays within
Anthropic's bounds (at least 1,024, below ``max_tokens``) and at most 32,000, above which Anthropic
advises batches. ``none`` and
``minimal`` ask for no thinking, which is what Claude does without it.

Thinking changes what else Anthropic accepts, so those refusals come here, before anything is sent
(``UnsupportedByBackend``: the model's next deployment, say an OpenAI one, may take the request as
it is): a ``temperature`` other than 1, ``top_k``, a ``top_p`` below 0.95, or an output limit too
small to think in.

One case sends no thinking: a tool loop whose last assistant turn came back without its thinking.
Anthropic requires that turn's signed thinking blocks when thinking is on, and a client of OpenAI's
APIs has them only if it kept ``reasoning_details`` (docs/api.md); without them the model answers the
tool results without thinking, as Anthropic's own guidance says, instead of the request failing.
"""

from __future__ import annotations

from typing import Any

from services.common.errors import InvalidRequest, UnsupportedByBackend
from services.router.backends import GenerationRequest
from services.router.backends.tool_use import assistant_tool_calls

EFFORT = "reasoning_effort"
SHARES = {"low": 0.2, "medium": 0.5, "high": 0.8, "xhigh": 0.95}
NO_THINKING = frozenset({"none", "minimal"})
MIN_BUDGET = 1024  # Anthropic's least budget_tokens
MAX_BUDGET = 32000
MIN_TOP_P = 0.95  # the lowest top_p Anthropic takes with thinking on


def _refuse(param: str, message: str) -> UnsupportedByBackend:
    return UnsupportedByBackend(message, param=param)


def thinking_for_effort(request: GenerationRequest) -> dict[str, Any] | None:
    """The ``thinking`` field a request's ``reasoning_effort`` asks for; None for no thinking (no
    effort given, ``none`` / ``minimal``, or a tool loop without its thinking: see above)."""
    effort = request.provider_options.get(EFFORT)
    if effort is None or request.thinking is not None:
        return None
    if not isinstance(effort, str) or effort not in SHARES.keys() | NO_THINKING:
        raise InvalidRequest(
            f"Invalid value for 'reasoning_effort': {effort!r}. Supported values are: 'none', 'minimal', "
            "'low', 'medium', 'high' and 'xhigh'.", param=EFFORT, code="invalid_value",
        )
    if effort in NO_THINKING or _tool_loop_without_thinking(request):
        return None
    sampling = request.sampling
    if sampling.max_tokens <= MIN_BUDGET:
        raise _refuse(EFFORT, f"reasoning_effort needs an output limit above {MIN_BUDGET} tokens on this "
                              "model (its thinking takes at least that many)")
    if sampling.temperature is not None and sampling.temperature != 1:
        raise _refuse("temperature", "temperature is not supported with reasoning_effort on this model "
                                     "(thinking runs at temperature 1)")
    if sampling.top_k is not None:
        raise _refuse("top_k", "top_k is not supported with reasoning_effort on this model")
    if sampling.top_p is not None and sampling.top_p < MIN_TOP_P:
        raise _refuse("top_p", f"top_p below {MIN_TOP_P} is not supported with reasoning_effort on this "
                               "model")
    share = int(sampling.max_tokens * SHARES[effort])
    budget = min(max(share, MIN_BUDGET), MAX_BUDGET, sampling.max_tokens - 1)
    return {"type": "enabled", "budget_tokens": budget}


def _tool_loop_without_thinking(request: GenerationRequest) -> bool:
    """The conversation answers the last assistant turn's tool calls, and that turn has no thinking
    Anthropic can take back (unsigned blocks, another model's, are left out)."""
    turns = request.messages or ()
    last = max((i for i, turn in enumerate(turns) if turn.role == "assistant"), default=None)
    if last is None or any(block.signed for block in turns[last].thinking):
        return False
    return bool(assistant_tool_calls(request.provider_options).get(last))
