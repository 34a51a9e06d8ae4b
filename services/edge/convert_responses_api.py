"""OpenAI Responses API wire ⇄ router: parse a ``/v1/responses`` body, refuse what we cannot serve, and
turn it into the Chat Completions request it means; build the non-streamed Response. Streaming
encoder: ``streams_responses_api``.

Why through Chat Completions: the conversation a Responses request carries (instructions, messages,
function calls and their outputs) is a chat conversation, and every backend here is reached through
the router's chat request. Translating once at the door reuses every check and conversion the chat
path already has (images, tools, tool turns, end users, prompt cache keys) instead of a second copy
of each. The translation keeps the client's ``input`` index for every message it makes, so that an
error about a message names the item the client sent (``input[3]``), not a message it never wrote.

Mapping: ``instructions`` → a system message first; ``input`` (a string → one user message) item by
item: a message keeps its role (``developer`` is a system message), ``input_text`` / ``output_text``
parts its text, ``input_image`` its images; a ``function_call`` joins the assistant message just before
it (else opens one) as a tool call; a ``function_call_output`` becomes a ``tool`` message; a
``reasoning`` item is left out (see the wire module). ``max_output_tokens`` → ``max_completion_tokens``,
``text.format`` → ``response_format``, ``text.verbosity`` → ``verbosity``, ``reasoning.effort`` →
``reasoning_effort``, function tools and ``tool_choice`` to their chat shapes.

``include: ["message.output_text.logprobs"]`` or ``top_logprobs`` → ``logprobs`` (and
``top_logprobs``): the chat's entries are the output text's ``logprobs`` as they are (the same fields).

Refused with a 400 naming the parameter (valid, not served here): ``previous_response_id`` and
``conversation`` (nothing is stored), ``background``, ``prompt`` (stored prompts), ``max_tool_calls``,
``truncation: "auto"``, server tools and a ``tool_choice`` of one, file inputs and images by
``file_id``, item references and other items of server tools.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import Field, ValidationError

from services.common.errors import InvalidRequest
from services.edge.convert_openai import check_chat, tool_calls
from services.edge.finish import finish_error, response_id
from services.edge.reasoning_details import decoded_detail, encoded_block
from services.edge.validation import openai_error
from services.edge.wire import openai as chat
from services.edge.wire import responses_api as w
from tollgate.router.v1 import router_pb2

_MESSAGE_PARAM = re.compile(r"^messages\[(\d+)\]")
_PASSED_AS_IS = ("temperature", "top_p", "stream", "parallel_tool_calls", "metadata", "user",
                 "safety_identifier", "prompt_cache_key", "store", "service_tier")
_NOT_STORED = "Nothing is stored on this platform: send the whole conversation in 'input'."


class ResponsesChat(chat.ChatCompletionRequest):
    """The chat request a Responses request means, with the request itself (``responses``) for what only
    it says: how the answer is shaped and what it echoes."""

    responses: w.ResponsesRequest = Field(exclude=True)


def parse_responses_request(body: bytes) -> ResponsesChat:
    """The chat request the body means, or InvalidRequest with OpenAI's ``param`` for the first problem."""
    try:
        req = w.ResponsesRequest.model_validate_json(body)
    except ValidationError as exc:
        raise openai_error(exc) from None
    _check(req)
    fields, origins = _as_chat(req)
    try:
        as_chat = ResponsesChat.model_validate({**fields, "responses": req})
        check_chat(as_chat)
    except ValidationError as exc:
        raise _named_by_input(openai_error(exc), origins) from None
    except InvalidRequest as exc:
        raise _named_by_input(exc, origins) from None
    return as_chat


def _refuse(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_value")


def _check(req: w.ResponsesRequest) -> None:
    for name in ("previous_response_id", "conversation"):
        if getattr(req, name) is not None:
            raise _refuse(name, f"'{name}' is not supported. {_NOT_STORED}")
    if req.background:
        raise _refuse("background", "Background responses are not supported: nothing is stored to fetch.")
    if req.prompt is not None:
        raise _refuse("prompt", f"Stored prompts are not supported. {_NOT_STORED}")
    if req.max_tool_calls is not None:
        raise _refuse("max_tool_calls", "'max_tool_calls' is not supported: only function tools are served.")
    if req.truncation == "auto":
        raise _refuse("truncation", "truncation 'auto' is not supported: nothing is dropped to fit; omit it.")
    if req.stream_options is not None and not req.stream:
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                             param="stream_options", code="invalid_value")
    for i, tool in enumerate(req.tools or []):
        if isinstance(tool, w.ServerTool):
            raise _refuse(f"tools[{i}].type", f"Tools of type '{tool.type}' are not supported; only function "
                          "tools are.")
    if isinstance(req.tool_choice, w.OtherToolChoice):
        raise _refuse("tool_choice", f"tool_choice of type '{req.tool_choice.type}' is not supported; use "
                      "'none', 'auto', 'required' or a function.")
    for i, item in enumerate(req.input if isinstance(req.input, list) else []):
        if isinstance(item, w.UnsupportedItem):
            raise _refuse(f"input[{i}]", f"Items of type '{item.type}' are not supported. {_NOT_STORED}")
        parts = item.content if isinstance(item, w.MessageItem) else (
            item.output if isinstance(item, w.FunctionCallOutputItem) else "")
        for j, part in enumerate(parts if isinstance(parts, list) else []):
            where = f"input[{i}].{'content' if isinstance(item, w.MessageItem) else 'output'}[{j}]"
            if isinstance(part, w.InputFile):
                raise _refuse(where, "File inputs are not supported: the models served here take text and "
                              "images only.")
            if isinstance(part, w.InputImage) and (part.file_id is not None or part.image_url is None):
                raise _refuse(f"{where}.file_id", f"Images by 'file_id' are not supported; send 'image_url'. "
                              f"{_NOT_STORED}")
            if isinstance(part, w.InputImage) and isinstance(item, w.FunctionCallOutputItem):
                raise _refuse(where, "Images in a function call output are not supported yet.")


def _as_chat(req: w.ResponsesRequest) -> tuple[dict[str, Any], list[str]]:
    """The chat request's fields, and for each of its messages the ``input`` item it came from."""
    messages: list[dict[str, Any]] = []
    origins: list[str] = []
    if req.instructions is not None:
        messages.append({"role": "system", "content": req.instructions})
        origins.append("instructions")
    items = [w.MessageItem(role="user", content=req.input)] if isinstance(req.input, str) else req.input
    # reasoning sent back: with the assistant turn it follows (one Response's items are one turn), else
    # with the next one (the reasoning a turn opens with comes before it)
    blocks: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if isinstance(item, w.MessageItem):
            messages.append(_message(item, where))
            origins.append(where)
        elif isinstance(item, w.FunctionCallItem):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments}}
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
                origins.append(where)
        elif isinstance(item, w.FunctionCallOutputItem):
            output = item.output if isinstance(item.output, str) else "\n".join(
                p.text for p in item.output if isinstance(p, w.InputText | w.OutputText))
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": output})
            origins.append(where)
        elif isinstance(item, w.ReasoningItem):
            if (detail := decoded_detail((item.model_extra or {}).get("encrypted_content"))) is not None:
                blocks.append(detail)
        if blocks and messages and messages[-1]["role"] == "assistant":
            messages[-1].setdefault("reasoning_details", []).extend(blocks)
            blocks = []
    if not messages:
        raise InvalidRequest("Invalid 'input': it has no message or function call to answer.", param="input",
                             code="empty_array")
    fields: dict[str, Any] = {"model": req.model, "messages": messages}
    for name in _PASSED_AS_IS:
        if (value := getattr(req, name)) is not None:
            fields[name] = value
    if req.max_output_tokens is not None:
        fields["max_completion_tokens"] = req.max_output_tokens
    if req.tools:
        fields["tools"] = [{"type": "function", "function": t.model_dump(exclude={"type"}, exclude_none=True)}
                           for t in req.tools if isinstance(t, w.FunctionTool)]
    if req.tool_choice is not None:
        choice = req.tool_choice
        fields["tool_choice"] = choice if isinstance(choice, str) else {
            "type": "function", "function": {"name": getattr(choice, "name", "")}}
    if req.text is not None:
        if (fmt := req.text.format) is not None:
            fields["response_format"] = _response_format(fmt)
        if req.text.verbosity is not None:
            fields["verbosity"] = req.text.verbosity
    if req.reasoning is not None and req.reasoning.effort is not None:
        fields["reasoning_effort"] = req.reasoning.effort
    if wants_logprobs(req):
        fields["logprobs"] = True
        if req.top_logprobs:
            fields["top_logprobs"] = req.top_logprobs
    return fields, origins


def _message(item: w.MessageItem, where: str) -> dict[str, Any]:
    role = "system" if item.role == "developer" else item.role
    if isinstance(item.content, str):
        return {"role": role, "content": item.content}
    if role == "user":
        parts: list[dict[str, Any]] = []
        for part in item.content:
            if isinstance(part, w.InputText | w.OutputText):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, w.InputImage):
                image: dict[str, Any] = {"url": part.image_url}
                if part.detail is not None:
                    image["detail"] = part.detail
                parts.append({"type": "image_url", "image_url": image})
        return {"role": role, "content": parts}
    texts = [p.text if isinstance(p, w.InputText | w.OutputText) else p.refusal
             for p in item.content if isinstance(p, w.InputText | w.OutputText | w.Refusal)]
    if len(texts) != len(item.content):
        raise _refuse(f"{where}.content", f"Messages of role '{item.role}' take text parts only.")
    return {"role": role, "content": "\n".join(texts)}


def _response_format(fmt: chat.TextFormat | chat.JsonObjectFormat | w.JsonSchemaFormat) -> dict[str, Any]:
    if isinstance(fmt, w.JsonSchemaFormat):
        schema = fmt.model_dump(exclude={"type"}, exclude_none=True, by_alias=True)
        return {"type": "json_schema", "json_schema": schema}
    return {"type": fmt.type}


# the chat parameters a Responses request's own become (``_as_chat``), by the name the client used
_CLIENT_PARAMS = {"messages": "input", "max_completion_tokens": "max_output_tokens",
                  "response_format": "text.format", "verbosity": "text.verbosity",
                  "reasoning_effort": "reasoning.effort", "logprobs": "include"}


def responses_param(param: str) -> str:
    """The Responses name of a parameter a backend refused by its chat name (``reasoning_effort`` is
    the client's ``reasoning.effort``); names the two APIs share stay as they are."""
    return _CLIENT_PARAMS.get(param, param)


def _named_by_input(exc: InvalidRequest, origins: list[str]) -> InvalidRequest:
    """A chat check's error, naming the ``input`` item its message came from."""
    param = exc.param or ""
    if param == "messages":
        return InvalidRequest(exc.message, param="input", code=exc.code)
    if (match := _MESSAGE_PARAM.match(param)) is None:
        return exc
    index = int(match.group(1))
    where = origins[index] if index < len(origins) else "input"
    message = exc.message.replace(match.group(0), where)
    return InvalidRequest(message, param=where + param[match.end():], code=exc.code)


# --- the answer ----------------------------------------------------------------------------------


def response_usage(usage: router_pb2.Usage) -> w.ResponseUsage:
    """OpenAI counts cached and cache-write tokens inside ``input_tokens``; the router does not."""
    prompt = usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
    return w.ResponseUsage(
        input_tokens=prompt,
        input_tokens_details=w.InputTokensDetails(
            cached_tokens=usage.cached_input_tokens, cache_write_tokens=usage.cache_write_tokens),
        output_tokens=usage.output_tokens,
        output_tokens_details=w.OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=prompt + usage.output_tokens,
    )


def incomplete_reason(finish_reason: str) -> w.IncompleteDetails | None:
    """Why an answer that ended cleanly is incomplete: cut at the output limit or by a content filter."""
    if finish_reason == "length":
        return w.IncompleteDetails(reason="max_output_tokens")
    if finish_reason == "content_filter":
        return w.IncompleteDetails(reason="content_filter")
    return None


def message_id(request_id: str, index: int) -> str:
    """The id of the answer's ``index``-th output item (``msg_…``, ``fc_…`` by kind, same hex)."""
    return response_id("msg_", request_id) + (f"_{index}" if index else "")


def call_item_id(request_id: str, index: int) -> str:
    return response_id("fc_", request_id) + f"_{index}"


def reasoning_item_id(request_id: str, index: int) -> str:
    return response_id("rs_", request_id) + f"_{index}"


ENCRYPTED_REASONING = "reasoning.encrypted_content"
OUTPUT_LOGPROBS = "message.output_text.logprobs"


def wants_blocks(req: w.ResponsesRequest) -> bool:
    """The client asked for reasoning it can send back (``include``)."""
    return ENCRYPTED_REASONING in (req.include or ())


def wants_logprobs(req: w.ResponsesRequest) -> bool:
    """The client asked for its output text's log probabilities: by ``include``, or by asking how many
    alternatives it wants (which means nothing without them)."""
    return OUTPUT_LOGPROBS in (req.include or ()) or req.top_logprobs is not None


def reasoning_item(
    request_id: str, index: int, block: router_pb2.ThinkingBlock, status: str, with_block: bool,
) -> w.OutputReasoning:
    encrypted = encoded_block(block.thinking, block.signature, block.redacted) if with_block else None
    return w.OutputReasoning(id=reasoning_item_id(request_id, index), status=status,
                             content=[w.ReasoningText(text=block.thinking)], encrypted_content=encrypted)


def echoed(req: w.ResponsesRequest) -> dict[str, Any]:
    """What a Response repeats of its request, as OpenAI's does."""
    out: dict[str, Any] = {
        "instructions": req.instructions, "max_output_tokens": req.max_output_tokens,
        "metadata": req.metadata or {}, "temperature": req.temperature, "top_p": req.top_p,
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "tools": [t.model_dump(exclude_none=True) for t in req.tools or [] if isinstance(t, w.FunctionTool)],
        "user": req.user, "top_logprobs": req.top_logprobs,
    }
    choice = req.tool_choice
    out["tool_choice"] = choice.model_dump() if isinstance(choice, w.NamedFunction) else choice or "auto"
    if req.text is not None and req.text.format is not None:
        out["text"] = {"format": req.text.format.model_dump(exclude_none=True, by_alias=True)}
    if req.reasoning is not None:
        out["reasoning"] = req.reasoning.model_dump(exclude_none=True)
    return out


def in_order(
    request_id: str, thinking: Sequence[router_pb2.ThinkingBlock], message: list[w.OutputMessage],
    calls: list[w.OutputFunctionCall], status: str, with_blocks: bool = False,
) -> list[w.OutputReasoning | w.OutputMessage | w.OutputFunctionCall]:
    """The output items in the order the model wrote them: reasoning before any text first, then the
    message, reasoning that came after some text, and each call followed by the reasoning after it (a
    message item is not cut by reasoning that came inside its text)."""
    reasoning = [(block, reasoning_item(request_id, i, block, status, with_blocks))
                 for i, block in enumerate(thinking)]
    output: list[w.OutputReasoning | w.OutputMessage | w.OutputFunctionCall] = [
        item for block, item in reasoning if not block.after_calls and not block.offset]
    output += message
    output += [item for block, item in reasoning if not block.after_calls and block.offset]
    for done, call in enumerate(calls, start=1):
        output.append(call)
        output += [item for block, item in reasoning if block.after_calls == done]
    return output + [item for block, item in reasoning if block.after_calls > len(calls)]


def build_response(
    request_id: str, model: str, created: int, text: str, finish: router_pb2.Finish, req: w.ResponsesRequest,
    logprobs_json: str = "",
) -> w.Response:
    """The non-streamed Response; raises the Finish's error instead when generation failed."""
    if (error := finish_error(finish)) is not None:
        raise error
    incomplete = incomplete_reason(finish.finish_reason)
    status = "incomplete" if incomplete else "completed"
    calls = [w.OutputFunctionCall(id=call_item_id(request_id, i), status="completed", call_id=call.id,
                                  name=call.function.name, arguments=call.function.arguments)
             for i, call in enumerate(tool_calls(finish))]
    part = w.OutputTextPart(text=text, logprobs=orjson.loads(logprobs_json) if logprobs_json else [])
    message = [w.OutputMessage(id=message_id(request_id, 0), status=status, content=[part])] if text else []
    output = in_order(request_id, finish.thinking, message, calls, status, wants_blocks(req))
    return w.Response(
        id=response_id("resp_", request_id), created_at=created, status=status, model=model, output=output,
        usage=response_usage(finish.usage), incomplete_details=incomplete, **echoed(req),
    )
