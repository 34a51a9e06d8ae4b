"""OpenAI wire ⇄ router: parse a body, refuse what we cannot serve, build the GenerateRequest and the
non-streamed responses. Streaming encoders: ``streams_openai``.

``n`` (1–128) is served by the request flow as that many generations (``choices.py``). Accepted
but refused with a clear 400 (valid OpenAI, not served here yet): audio and file parts, ``audio``
answers and the deprecated ``function_call``, ``modalities`` with audio (legacy completions:
``convert_completions``). Accepted and not sent on: ``store``,
``service_tier`` and ``metadata``. ``user`` / ``safety_identifier`` and ``prompt_cache_key`` go on as
per-account hashes (``end_user.py``), never as the client sent them.

Messages are flattened to text (text parts joined with a newline); ``developer`` becomes ``system``.
An assistant message's ``reasoning`` / ``reasoning_content`` (a reasoning model's earlier reasoning,
which clients send back) is accepted and not sent on: servers differ on whether they take it back
(vLLM reads ``reasoning``, DeepSeek refuses it), and a model answers without it.
A user message's ``image_url`` parts travel beside its text, placed by offset (``content.FlatTurn``);
the request flow refuses them for a model whose catalog entry does not take image input.
Everything a backend needs beyond text and sampling goes to ``provider_options_json`` in OpenAI's own
vocabulary (``tools``, ``tool_choice``, ``parallel_tool_calls``, ``response_format``, penalties,
``logit_bias``, ``reasoning_effort``, ``verbosity``), plus ``assistant_tool_calls``: the tool calls of
earlier assistant turns keyed by their index in ``chat.messages``, which ``ChatMessage`` cannot carry.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from services.common.errors import InvalidRequest
from services.edge.content import FlatTurn, image_url_problem
from services.edge.end_user import end_user_id, prompt_cache_key_id
from services.edge.finish import finish_error, response_id
from services.edge.reasoning_details import answer_details, sent_back
from services.edge.validation import openai_error
from services.edge.wire import openai as w
from services.edge.wire import openai_responses as r
from tollgate.router.v1 import router_pb2

_TEXT_ONLY = "the models served here take text and images only"
_CHAT_REASONS: dict[str, r.ChatFinishReason] = {
    "stop": "stop", "stop_sequence": "stop", "length": "length", "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def parse_chat_request(body: bytes) -> w.ChatCompletionRequest:
    """The validated request, or InvalidRequest with OpenAI's ``param`` for the first problem."""
    try:
        req = w.ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise openai_error(exc) from None
    check_chat(req)
    return req


def refuse(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_value")


# OpenAI's own bounds of ``n``; also the most choices one request may ask for (a completion's prompts
# times ``n``), each its own generation
MAX_CHOICES = 128


def check_common(n: int | None, stream: bool | None, stream_options: object) -> None:
    if n is not None and n < 1:
        raise InvalidRequest(f"Invalid 'n': integer below minimum value. Expected a value >= 1, but got {n} "
                             "instead.", param="n", code="integer_below_min_value")
    if n is not None and n > MAX_CHOICES:
        raise InvalidRequest(f"Invalid 'n': integer above maximum value. Expected a value <= {MAX_CHOICES}, "
                             f"but got {n} instead.", param="n", code="integer_above_max_value")
    if stream_options is not None and not stream:
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                             param="stream_options", code="invalid_value")


def check_chat(req: w.ChatCompletionRequest) -> None:
    """The checks of a parsed chat request beyond its shape (shared with the Responses API, which
    becomes one)."""
    check_common(req.n, req.stream, req.stream_options)
    if req.top_logprobs and not req.logprobs:
        raise InvalidRequest("Invalid value for 'top_logprobs': 'logprobs' must be true when "
                             "'top_logprobs' is set.", param="top_logprobs", code="invalid_value")
    if req.modalities and "audio" in req.modalities:
        raise refuse("modalities", f"Audio output is not supported: {_TEXT_ONLY}.")
    if req.tool_choice not in (None, "none", "auto") and not req.tools:
        raise InvalidRequest("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                             "are specified.", param="tool_choice", code="invalid_value")
    if req.parallel_tool_calls is not None and not req.tools:
        raise InvalidRequest("Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed "
                             "when 'tools' are specified.", param="parallel_tool_calls", code="invalid_value")
    for i, msg in enumerate(req.messages):
        if isinstance(msg, w.AssistantMessage):
            if msg.audio is not None:
                raise refuse(f"messages[{i}].audio", f"Audio is not supported: {_TEXT_ONLY}.")
            if msg.function_call is not None:
                raise refuse(f"messages[{i}].function_call",
                              "'function_call' is deprecated and not supported; use 'tool_calls'.")
        if isinstance(msg, w.UserMessage) and isinstance(msg.content, list):
            for j, part in enumerate(msg.content):
                if isinstance(part, w.UnsupportedPart):
                    raise refuse(f"messages[{i}].content[{j}]",
                                  f"Content parts of type '{part.type}' are not supported: {_TEXT_ONLY}.")
                if isinstance(part, w.ImageUrlPart) and (problem := image_url_problem(part.image_url.url)):
                    raise InvalidRequest(f"Invalid image in messages[{i}].content[{j}]: {problem}.",
                                         param=f"messages[{i}].content[{j}].image_url.url",
                                         code="invalid_image_url")
    _check_tool_turns(req.messages)


def _check_tool_turns(messages: list[w.Message]) -> None:
    """OpenAI's rules for tool turns: an assistant message's ``tool_calls`` are answered by the ``tool``
    messages right after it, one per call id, and a ``tool`` message answers a call of that message.
    Checked here so that a broken conversation is refused in OpenAI's words before anything is
    forwarded (Anthropic's API, behind a conversion, would refuse it in its own)."""
    calls: set[str] = set()  # the call ids of the assistant message the tool turns answer
    waiting: list[str] = []  # ... those still unanswered
    for i, msg in enumerate(messages):
        if isinstance(msg, w.ToolMessage):
            if not calls:
                raise InvalidRequest("Invalid parameter: messages with role 'tool' must be a response to a "
                                     "preceding message with 'tool_calls'.", param=f"messages[{i}].role")
            if msg.tool_call_id not in calls:
                raise InvalidRequest(
                    f"Invalid parameter: 'tool_call_id' of '{msg.tool_call_id}' not found in 'tool_calls' of "
                    "previous message.", param=f"messages[{i}].tool_call_id",
                )
            if msg.tool_call_id in waiting:
                waiting.remove(msg.tool_call_id)
            continue
        _check_answered(waiting, i)
        waiting = [call.id for call in msg.tool_calls or ()] if isinstance(msg, w.AssistantMessage) else []
        calls = set(waiting)
    _check_answered(waiting, None)


def _check_answered(waiting: list[str], at: int | None) -> None:
    """``at``: the message that came instead of the missing answers (None: the conversation ended)."""
    if waiting:
        raise InvalidRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            "'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(waiting),
            param="messages" if at is None else f"messages[{at}].role",
        )


def _text(content: str | list[w.TextPart] | list[w.AssistantPart] | list[w.UserPart] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(
        p.text if isinstance(p, w.TextPart) else p.refusal
        for p in content
        if isinstance(p, w.TextPart | w.RefusalPart)
    )


def _user_turn(content: list[w.UserPart]) -> router_pb2.ChatMessage:
    """A user message with parts: its text, and its images where they were among the text."""
    flat = FlatTurn()
    for part in content:
        if isinstance(part, w.TextPart):
            flat.add_text(part.text)
        elif isinstance(part, w.ImageUrlPart):
            flat.add_image(part.image_url.url, part.image_url.detail or "")
    return router_pb2.ChatMessage(role="user", content=flat.text, images=flat.images)


def _stop(stop: str | list[str] | None) -> list[str]:
    stops = [stop] if isinstance(stop, str) else (stop or [])
    return [s for s in stops if s]  # an empty stop string would end every answer at once


def sampling(
    max_tokens: int, req: w.ChatCompletionRequest | w.CompletionRequest
) -> router_pb2.SamplingParams:
    sampling = router_pb2.SamplingParams(max_tokens=max_tokens, stop=_stop(req.stop))
    if req.temperature is not None:
        sampling.temperature = req.temperature
    if req.top_p is not None:
        sampling.top_p = req.top_p
    if req.seed is not None:
        sampling.seed = req.seed & 0xFFFF_FFFF_FFFF_FFFF  # OpenAI's seed is int64; ours is uint64
    return sampling


def _options(req: w.ChatCompletionRequest, tool_calls: dict[str, Any]) -> str:
    opts: dict[str, Any] = {}
    if req.tools:
        opts["tools"] = [t.model_dump(exclude_none=True) for t in req.tools]
        if req.tool_choice is not None:
            opts["tool_choice"] = req.tool_choice if isinstance(req.tool_choice, str) else (
                req.tool_choice.model_dump())
        if req.parallel_tool_calls is not None:
            opts["parallel_tool_calls"] = req.parallel_tool_calls
    if req.response_format is not None:
        opts["response_format"] = req.response_format.model_dump(exclude_none=True, by_alias=True)
    for name in ("presence_penalty", "frequency_penalty", "logit_bias", "reasoning_effort", "verbosity"):
        if (value := getattr(req, name)) is not None:
            opts[name] = value
    if req.logprobs:  # only OpenAI-compatible servers return them; other backends refuse the option
        opts["logprobs"] = True
        if req.top_logprobs:
            opts["top_logprobs"] = req.top_logprobs
    if tool_calls:
        opts["assistant_tool_calls"] = tool_calls
    return orjson.dumps(opts).decode() if opts else ""


def chat_to_generate(
    req: w.ChatCompletionRequest, request_id: str, account_id: str, model_id: str, *, default_max_tokens: int
) -> router_pb2.GenerateRequest:
    messages: list[router_pb2.ChatMessage] = []
    tool_calls: dict[str, Any] = {}
    for i, msg in enumerate(req.messages):
        role = "system" if msg.role == "developer" else msg.role
        if isinstance(msg, w.UserMessage) and isinstance(msg.content, list):
            out = _user_turn(msg.content)
        else:
            out = router_pb2.ChatMessage(role=role, content=_text(msg.content))
        if not isinstance(msg, w.ToolMessage) and msg.name:
            out.name = msg.name
        if isinstance(msg, w.ToolMessage):
            out.tool_call_id = msg.tool_call_id
        if isinstance(msg, w.AssistantMessage) and msg.tool_calls:
            tool_calls[str(i)] = [c.model_dump() for c in msg.tool_calls]
        if isinstance(msg, w.AssistantMessage) and msg.reasoning_details:
            out.thinking.extend(sent_back(msg.reasoning_details))
        messages.append(out)
    return router_pb2.GenerateRequest(
        request_id=request_id, account_id=account_id, model=model_id,
        chat=router_pb2.ChatInput(messages=messages),
        sampling=sampling(req.effective_max_tokens or default_max_tokens, req),
        provider_options_json=_options(req, tool_calls),
        end_user=end_user_id(account_id, req.safety_identifier or req.user),  # the newer name first
        prompt_cache_key=prompt_cache_key_id(account_id, req.prompt_cache_key),
    )


def openai_usage(usage: router_pb2.Usage) -> r.Usage:
    """OpenAI counts cached and cache-write tokens inside ``prompt_tokens``; the router does not."""
    prompt = usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
    return r.Usage(
        prompt_tokens=prompt, completion_tokens=usage.output_tokens,
        total_tokens=prompt + usage.output_tokens,
        prompt_tokens_details=r.PromptTokensDetails(cached_tokens=usage.cached_input_tokens),
        completion_tokens_details=r.CompletionTokensDetails(reasoning_tokens=usage.reasoning_tokens),
    )


def chat_finish_reason(reason: str) -> r.ChatFinishReason:
    return _CHAT_REASONS.get(reason, "stop")


def tool_calls(finish: router_pb2.Finish) -> list[r.ToolCall]:
    return [r.ToolCall(id=c.id, function=r.FunctionCall(name=c.name, arguments=c.arguments_json))
            for c in finish.tool_calls]


def completion_finish_reason(reason: str) -> r.CompletionFinishReason:
    mapped = _CHAT_REASONS.get(reason, "stop")
    return "stop" if mapped == "tool_calls" else mapped


def build_chat_completion(
    request_id: str, model: str, created: int, text: str, finish: router_pb2.Finish, logprobs_json: str = "",
) -> r.ChatCompletion:
    """The non-streamed answer; raises the Finish's error instead when generation failed."""
    if (error := finish_error(finish)) is not None:
        raise error
    calls = tool_calls(finish)
    reasoning = "".join(block.thinking for block in finish.thinking) or None
    message = r.ChatCompletionMessage(content=text if text or not calls else None, tool_calls=calls or None,
                                      reasoning=reasoning, reasoning_details=answer_details(finish.thinking))
    logprobs = {"content": orjson.loads(logprobs_json), "refusal": None} if logprobs_json else None
    choice = r.ChatChoice(index=0, message=message, finish_reason=chat_finish_reason(finish.finish_reason),
                          logprobs=logprobs)
    return r.ChatCompletion(id=response_id("chatcmpl-", request_id), created=created, model=model,
                            choices=[choice], usage=openai_usage(finish.usage))
