"""Legacy completions (``POST /v1/completions``) at the boundary: the request checked and turned into
the router's ``GenerateRequest``, and the router's answer written back in the legacy format.

What evaluation harnesses send is served (lm-evaluation-harness scores a text by
``echo: true, logprobs: 1``, usually with the prompt as token ids, and sends its batches as arrays of
prompts): the prompt is a string, an array of token ids, or an array of either (a batch: one choice per
prompt, times ``n``, in the prompts' order; ``choices.py``). ``echo`` and ``logprobs`` (0–20
alternatives per token; OpenAI's own limit is 5, and its 400 says so) go to the backend as provider
options, so a deployment that cannot honour them (Triton, Anthropic) refuses them by name and the next
one is asked. ``suffix`` and ``best_of`` > 1 are refused with a 400 naming them.

The router carries log probabilities per token (``{token, logprob, top_logprobs, text_offset}``,
``Delta.logprobs_json``); ``legacy_logprobs`` turns them back into the four parallel lists OpenAI
answers with (``tokens``, ``token_logprobs``, ``top_logprobs``, ``text_offset``).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from services.common.errors import InvalidRequest
from services.edge.convert_openai import (
    MAX_CHOICES,
    check_common,
    completion_finish_reason,
    openai_usage,
    refuse,
    sampling,
)
from services.edge.end_user import end_user_id
from services.edge.finish import finish_error, response_id
from services.edge.token_ids import token_ids
from services.edge.validation import openai_error
from services.edge.wire import openai as w
from services.edge.wire import openai_responses as r
from tollgate.router.v1 import router_pb2

_PASSED_ON = ("presence_penalty", "frequency_penalty", "logit_bias")


def parse_completion_request(body: bytes) -> w.CompletionRequest:
    """The validated request, or InvalidRequest with OpenAI's ``param`` for the first problem."""
    try:
        req = w.CompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise openai_error(exc) from None
    check_common(req.n, req.stream, req.stream_options)
    if req.best_of is not None and req.best_of != 1:
        raise refuse("best_of", "Invalid 'best_of': only best_of=1 is supported.")
    if req.suffix:
        raise refuse("suffix", "suffix (insertion) is not supported by the models served here.")
    # the prompt's problems are the client's, found before anything is admitted
    prompts, n = len(prompt_inputs(req.prompt)), req.n or 1
    if prompts * n > MAX_CHOICES:
        raise InvalidRequest(
            f"Invalid 'prompt': {prompts} prompts with n={n} ask for {prompts * n} choices; one request "
            f"may ask for at most {MAX_CHOICES}.", param="prompt", code="invalid_value",
        )
    return req


def prompt_inputs(prompt: str | list[Any]) -> list[str | router_pb2.TokenIds]:
    """The request's prompts, each its text or its token ids: one, or a batch (an array of strings or
    of token-id arrays); a 400 for an empty array, a batch of mixed kinds, or a bad token id (named by
    its place)."""
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise refuse("prompt", "Invalid 'prompt': an empty array is not supported; send at least one prompt.")
    first = prompt[0]
    if isinstance(first, int) and not isinstance(first, bool):
        return [token_ids(prompt, "prompt")]  # one prompt, as token ids
    if isinstance(first, str) and all(isinstance(item, str) for item in prompt):
        return list(prompt)
    if isinstance(first, list) and all(isinstance(item, list) for item in prompt):
        return [token_ids(item, f"prompt[{i}]") for i, item in enumerate(prompt)]
    raise InvalidRequest("Invalid 'prompt': expected a string, an array of token ids, or an array of "
                         "either (all strings or all token-id arrays).", param="prompt", code="invalid_value")


def completion_to_generate(
    req: w.CompletionRequest, request_id: str, account_id: str, model_id: str, *, default_max_tokens: int
) -> router_pb2.GenerateRequest:
    """The router's request for the request's (first) prompt; ``for_prompt`` makes the others'."""
    opts: dict[str, Any] = {k: v for k in _PASSED_ON if (v := getattr(req, k)) is not None}
    if req.echo:
        opts["echo"] = True
    if req.logprobs is not None:  # 0 asks for the chosen tokens' own log probabilities, no alternatives
        opts["logprobs"] = req.logprobs
    generate = router_pb2.GenerateRequest(
        request_id=request_id, account_id=account_id, model=model_id,
        sampling=sampling(req.max_tokens or default_max_tokens, req),
        provider_options_json=orjson.dumps(opts).decode() if opts else "",
        end_user=end_user_id(account_id, req.user),
    )
    _set_prompt(generate, prompt_inputs(req.prompt)[0])
    return generate


def for_prompt(
    generate: router_pb2.GenerateRequest, prompt: str | router_pb2.TokenIds
) -> router_pb2.GenerateRequest:
    """``generate`` (one prompt of a batch) for another prompt of the same batch."""
    other = router_pb2.GenerateRequest()
    other.CopyFrom(generate)
    _set_prompt(other, prompt)
    return other


def _set_prompt(generate: router_pb2.GenerateRequest, prompt: str | router_pb2.TokenIds) -> None:
    if isinstance(prompt, str):
        generate.prompt = prompt
    else:
        generate.prompt_tokens.CopyFrom(prompt)


def legacy_logprobs(entries_json: str) -> dict[str, list[Any]]:
    """The router's per-token entries as OpenAI's legacy ``logprobs`` object."""
    entries: list[dict[str, Any]] = orjson.loads(entries_json)
    return {
        "tokens": [e.get("token") for e in entries],
        "token_logprobs": [e.get("logprob") for e in entries],
        "top_logprobs": [e.get("top_logprobs") for e in entries],
        "text_offset": [e.get("text_offset") for e in entries],
    }


def build_completion(
    request_id: str, model: str, created: int, text: str, finish: router_pb2.Finish, logprobs_json: str = "",
) -> r.Completion:
    """The non-streamed answer; raises the Finish's error instead when generation failed."""
    if (error := finish_error(finish)) is not None:
        raise error
    reason = completion_finish_reason(finish.finish_reason)
    choice = r.CompletionChoice(text=text, index=0, finish_reason=reason,
                                logprobs=legacy_logprobs(logprobs_json) if logprobs_json else None)
    return r.Completion(id=response_id("cmpl-", request_id), created=created, model=model, choices=[choice],
                        usage=openai_usage(finish.usage))
