"""Anthropic wire ⇄ router: parse a Messages body, refuse what we cannot serve, and build the
GenerateRequest. The answer: ``anthropic_answer`` (the non-streamed Message) and ``streams_anthropic``.

Refused with a clear 400 (valid Anthropic, not served here yet): document/search-result blocks,
server tools, and a first message that is not ``user``. Image blocks of user turns and of tool results
travel beside the text, placed by offset (``content.FlatTurn``; a base64 source as a data: URL); the
request flow refuses them for a model whose catalog entry does not take image input.

Extended thinking: ``thinking`` becomes the request's ``ThinkingConfig`` (a budget checked as Anthropic
checks it: at least 1,024 tokens and less than ``max_tokens``), which Anthropic deployments take as it
is; an OpenAI-compatible one returns its model's reasoning, if any, as unsigned thinking; Triton
refuses it and fallback moves on, else the client gets a 400 naming ``thinking``. Thinking
blocks of earlier assistant turns travel beside the text like images, placed by offset (or by the
number of tool calls before them), so the provider gets them back unchanged and in order.
Consecutive turns of one role are merged into one, as Anthropic documents, so backends whose chat
templates demand strict alternation still get it. ``metadata.user_id`` and ``service_tier`` are
accepted and not sent on. Structured outputs (``output_config.format``, a JSON schema) travel as
OpenAI's ``response_format`` of type ``json_schema``, which the router's Anthropic adapter turns back
into ``output_config`` and OpenAI-compatible servers take as it is; Triton refuses it.

Prompt caching survives the flattening: each ``cache_control`` becomes a ``CacheBreakpoint`` at the
offset where its block ends in the turn's joined text (a tool result's, or a tool call's, at the end of
its turn), and a tool's rides on the tool; the router's Anthropic adapter splits the text there again.
A top-level ``cache_control`` (automatic caching) is a breakpoint on the last block of the last turn.

Tool use is carried, not dropped: ``provider_options_json`` uses the OpenAI vocabulary for both front
doors (one thing for the router's adapters to translate): ``tools`` become function tools,
``tool_choice`` any/tool/none become required/named/none, ``disable_parallel_tool_use`` becomes
``parallel_tool_calls: false``. A ``tool_use`` block becomes an entry of ``assistant_tool_calls`` (keyed
by the assistant message's index in ``chat.messages``); a ``tool_result`` block becomes a ``tool``
message ahead of the user's text, its ``is_error`` kept as ``tool_failed`` (OpenAI's API has no such
flag, so only an Anthropic provider hears it).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from services.common.errors import InvalidRequest
from services.edge.content import FlatTurn, base64_problem, data_url, image_url_problem
from services.edge.end_user import end_user_id
from services.edge.validation import anthropic_error
from services.edge.wire import anthropic as w
from tollgate.router.v1 import router_pb2

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
_NOT_SERVED = "is not supported: the models served here take text and images only"


def parse_count_tokens_request(body: bytes) -> w.MessagesRequest:
    """A count_tokens body, validated and checked as the same prompt in a Messages request would be
    (so a prompt that counts is one that generates), as that request with ``max_tokens`` 1: the
    router's request needs a limit, and counting generates nothing."""
    try:
        req = w.CountTokensRequest.model_validate_json(body)
    except ValidationError as exc:
        raise anthropic_error(exc) from None
    as_messages = w.MessagesRequest.model_construct(max_tokens=1, **dict(req))
    _check(as_messages)
    return as_messages


def _refuse(where: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {problem}", param=where)


MIN_THINKING_BUDGET = 1024  # Anthropic's smallest budget_tokens
_ASSISTANT_ONLY = (w.ToolUseBlock, w.ThinkingBlock, w.RedactedThinkingBlock)


def parse_messages_request(body: bytes) -> w.MessagesRequest:
    """The validated request, or InvalidRequest worded as Anthropic words it (``<location>: <problem>``)."""
    try:
        req = w.MessagesRequest.model_validate_json(body)
    except ValidationError as exc:
        raise anthropic_error(exc) from None
    _check(req)
    budget = req.thinking.budget_tokens if req.thinking and req.thinking.type == "enabled" else None
    if budget is not None and budget >= req.max_tokens:
        raise _refuse("thinking.budget_tokens", f"`max_tokens` must be greater than `thinking.budget_tokens` "
                      f"({budget}), since thinking counts toward it")
    return req


def asks_for_thinking(req: object) -> bool:
    """Whether a parsed request asked for extended thinking (its answer may open with thinking)."""
    return isinstance(req, w.MessagesRequest) and req.thinking is not None and req.thinking.type != "disabled"


def _check_thinking(thinking: w.Thinking | None) -> None:
    if thinking is None or thinking.type != "enabled":
        return
    if thinking.budget_tokens is None:
        raise _refuse("thinking.budget_tokens", "Field required when thinking is enabled")
    if thinking.budget_tokens < MIN_THINKING_BUDGET:
        raise _refuse("thinking.budget_tokens", f"Input should be at least {MIN_THINKING_BUDGET}")


def _check(req: w.MessagesRequest) -> None:
    _check_thinking(req.thinking)
    if req.messages[0].role != "user":
        raise _refuse("messages.0.role", "the first message must use the 'user' role")
    for i, tool in enumerate(req.tools or []):
        if isinstance(tool, w.ServerTool):
            raise _refuse(f"tools.{i}", f"server tool '{tool.type}' is not supported; only custom tools are")
    for i, msg in enumerate(req.messages):
        for j, block in enumerate(msg.content if isinstance(msg.content, list) else []):
            where = f"messages.{i}.content.{j}"
            if isinstance(block, w.UnsupportedBlock):
                raise _refuse(where, f"'{block.type}' content {_NOT_SERVED}")
            if isinstance(block, w.ImageBlock):
                if msg.role != "user":
                    raise _refuse(where, "'image' blocks may only appear in user messages")
                _check_image(block, where)
            if isinstance(block, _ASSISTANT_ONLY) and msg.role != "assistant":
                raise _refuse(where, f"'{block.type}' blocks may only appear in assistant messages")
            if isinstance(block, w.ToolResultBlock):
                if msg.role != "user":
                    raise _refuse(where, "'tool_result' blocks may only appear in user messages")
                for k, part in enumerate(block.content if isinstance(block.content, list) else []):
                    if isinstance(part, w.UnsupportedBlock):
                        raise _refuse(f"{where}.content.{k}", f"'{part.type}' content {_NOT_SERVED}")
                    if isinstance(part, w.ImageBlock):
                        _check_image(part, f"{where}.content.{k}")
    _check_tool_results(req.messages)


def _check_image(block: w.ImageBlock, where: str) -> None:
    source = block.source
    if isinstance(source, w.Base64ImageSource):
        problem, at = base64_problem(source.data), f"{where}.source.data"
    else:
        problem, at = image_url_problem(source.url), f"{where}.source.url"
    if problem is not None:
        raise _refuse(at, problem)


def _check_tool_results(messages: list[w.MessageParam]) -> None:
    """Anthropic's rule for tool turns: every ``tool_use`` of an assistant turn has its ``tool_result``
    in the user turn right after it, and a ``tool_result`` answers a ``tool_use`` of the turn before.
    Consecutive messages of one role are one turn, as Anthropic merges them. Checked here so that a
    broken conversation is refused in Anthropic's words before anything is forwarded."""
    uses: dict[str, None] = {}  # the tool_use ids of the assistant turn just before (in order)
    used_at = 0  # ... and the message that holds its last one
    answered: set[str] = set()
    for i, msg in enumerate(messages):
        blocks = msg.content if isinstance(msg.content, list) else []
        if msg.role == "assistant":
            for block in blocks:
                if isinstance(block, w.ToolUseBlock):
                    uses[block.id], used_at = None, i
            continue
        for j, block in enumerate(blocks):
            if isinstance(block, w.ToolResultBlock):
                if block.tool_use_id not in uses:
                    raise _refuse(f"messages.{i}.content.{j}", "unexpected `tool_use_id` found in "
                                  f"`tool_result` blocks: {block.tool_use_id}. Each `tool_result` block must "
                                  "have a corresponding `tool_use` block in the previous message.")
                answered.add(block.tool_use_id)
        if i + 1 == len(messages) or messages[i + 1].role != "user":  # the user turn ends here
            _check_answered(uses, answered, used_at)
            uses, answered = {}, set()
    _check_answered(uses, answered, used_at)  # the conversation ends with an assistant turn


def _check_answered(uses: dict[str, None], answered: set[str], at: int) -> None:
    if missing := [use for use in uses if use not in answered]:
        raise _refuse(f"messages.{at}", f"`tool_use` ids were found without `tool_result` blocks immediately "
                      f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                      "`tool_result` block in the next message.")


def _flat(blocks: list[Any], marked: bool = True) -> FlatTurn:
    """The text and image blocks of a turn, in order, with a breakpoint where each block that asked to
    be cached ends (unless not ``marked``); other blocks are the caller's."""
    flat = FlatTurn()
    calls = 0  # tool calls so far: a thinking block after one is placed by their count
    for block in blocks:
        if isinstance(block, w.ThinkingBlock):
            flat.add_thinking(calls, thinking=block.thinking, signature=block.signature)
            continue
        if isinstance(block, w.RedactedThinkingBlock):
            flat.add_thinking(calls, redacted=block.data)
            continue
        calls += isinstance(block, w.ToolUseBlock)
        ttl = _ttl(block.cache_control) if marked else None
        if isinstance(block, w.TextBlock):
            flat.add_text(block.text, ttl)
        elif isinstance(block, w.ImageBlock):
            source = block.source
            if isinstance(source, w.Base64ImageSource):
                flat.add_image(data_url(source.media_type, source.data), ttl=ttl)
            else:
                flat.add_image(source.url, ttl=ttl)
    return flat


def _ttl(control: w.CacheControl | None) -> str | None:
    return None if control is None else control.ttl or ""


def _breakpoint(offset: int, control: w.CacheControl) -> router_pb2.CacheBreakpoint:
    return router_pb2.CacheBreakpoint(offset=offset, ttl=control.ttl or "")


def _result_cached(block: w.ToolResultBlock) -> w.CacheControl | None:
    """A tool result's breakpoint, on the block or on any of its parts: the result is one turn."""
    parts = block.content if isinstance(block.content, list) else []
    marked = [p.cache_control for p in parts if isinstance(p, w.TextBlock | w.ImageBlock) and p.cache_control]
    return block.cache_control or (marked[-1] if marked else None)


def _tool_result(block: w.ToolResultBlock) -> router_pb2.ChatMessage:
    """The ``tool`` message a tool result becomes: its text and images (a screenshot a tool returned),
    its breakpoint at the end (the result is one turn)."""
    if block.content is None or isinstance(block.content, str):
        flat = FlatTurn()
        flat.add_text(block.content or "")
    else:
        flat = _flat(block.content, marked=False)
    cached = _result_cached(block)
    return router_pb2.ChatMessage(
        role="tool", content=flat.text, tool_call_id=block.tool_use_id, images=flat.images,
        cache_breakpoints=[_breakpoint(len(flat.text), cached)] if cached else [],
        tool_failed=bool(block.is_error),
    )


def _turns(req: w.MessagesRequest) -> tuple[list[router_pb2.ChatMessage], dict[str, Any]]:
    """Flatten the conversation, merging consecutive same-role turns, and collect assistant tool calls."""
    out: list[router_pb2.ChatMessage] = []
    tool_calls: dict[str, Any] = {}
    if req.system:
        if isinstance(req.system, str):
            out.append(router_pb2.ChatMessage(role="system", content=req.system))
        else:
            system = _flat(req.system)
            out.append(router_pb2.ChatMessage(
                role="system", content=system.text, cache_breakpoints=system.marks,
            ))
    merged: list[tuple[str, list[Any]]] = []
    for msg in req.messages:
        blocks = [w.TextBlock(type="text", text=msg.content)] if isinstance(msg.content, str) else msg.content
        if merged and merged[-1][0] == msg.role:
            merged[-1][1].extend(blocks)
        else:
            merged.append((msg.role, list(blocks)))
    for role, blocks in merged:
        flat = _flat(blocks)
        text, marks = flat.text, flat.marks
        if role == "user":
            for b in blocks:
                if isinstance(b, w.ToolResultBlock):
                    out.append(_tool_result(b))
            if any(isinstance(b, w.TextBlock | w.ImageBlock) for b in blocks) or not any(
                isinstance(b, w.ToolResultBlock) for b in blocks
            ):
                out.append(router_pb2.ChatMessage(
                    role="user", content=text, cache_breakpoints=marks, images=flat.images,
                ))
            continue
        calls = [
            {"id": b.id, "type": "function",
             "function": {"name": b.name, "arguments": orjson.dumps(b.input).decode()}}
            for b in blocks if isinstance(b, w.ToolUseBlock)
        ]
        if calls:
            tool_calls[str(len(out))] = calls
        used = [b.cache_control for b in blocks if isinstance(b, w.ToolUseBlock) and b.cache_control]
        if used:  # at the end of the content: the router marks the turn's last block, its last call
            marks.append(_breakpoint(len(text), used[-1]))
        out.append(router_pb2.ChatMessage(
            role="assistant", content=text, cache_breakpoints=marks, thinking=flat.thinking,
        ))
    return out, tool_calls


def _tool_cache(tool: w.Tool) -> dict[str, Any]:
    return {"cache_control": tool.cache_control.model_dump(exclude_none=True)} if tool.cache_control else {}


def _options(req: w.MessagesRequest, tool_calls: dict[str, Any]) -> str:
    opts: dict[str, Any] = {}
    tools = [t for t in req.tools or [] if isinstance(t, w.Tool)]
    if tools:
        opts["tools"] = [
            {"type": "function", "function": {
                "name": t.name, "parameters": t.input_schema,
                **({"description": t.description} if t.description is not None else {}),
            }, **_tool_cache(t)}
            for t in tools
        ]
        choice = req.tool_choice
        if choice is not None:
            opts["tool_choice"] = (
                {"type": "function", "function": {"name": choice.name}} if choice.type == "tool"
                else _TOOL_CHOICE[choice.type]
            )
            if choice.disable_parallel_tool_use:
                opts["parallel_tool_calls"] = False
    if tool_calls:
        opts["assistant_tool_calls"] = tool_calls
    if req.output_config is not None and req.output_config.format is not None:
        # OpenAI's vocabulary, as for tools: strict, since Anthropic's structured outputs constrain the
        # answer to the schema and an OpenAI-compatible server does that only when told to
        opts["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": req.output_config.format.schema_, "strict": True}}
    return orjson.dumps(opts).decode() if opts else ""


def messages_param(param: str) -> str:
    """The Messages name of a parameter a backend refused by the router's (OpenAI) name: structured
    outputs travel as ``response_format``; the other names the two vocabularies share."""
    return "output_config.format" if param == "response_format" else param


def _cache_last_block(messages: list[router_pb2.ChatMessage], control: w.CacheControl) -> None:
    """The request's top-level ``cache_control`` (automatic caching), as Anthropic applies it: a
    breakpoint on the last cacheable block, the end of the last turn (an image, when the turn ends with
    one), unless the client marked that block itself."""
    last = messages[-1]
    end = len(last.content)
    if last.images and last.images[-1].offset == end:
        image = last.images[-1]
        if not image.cached:
            image.cached, image.cache_ttl = True, control.ttl or ""
    elif not any(mark.offset == end for mark in last.cache_breakpoints):
        last.cache_breakpoints.append(_breakpoint(end, control))


def messages_to_generate(
    req: w.MessagesRequest, request_id: str, account_id: str, model_id: str
) -> router_pb2.GenerateRequest:
    messages, tool_calls = _turns(req)
    if req.cache_control is not None:
        _cache_last_block(messages, req.cache_control)
    sampling = router_pb2.SamplingParams(
        max_tokens=req.max_tokens, stop=[s for s in req.stop_sequences or [] if s]
    )
    if req.temperature is not None:
        sampling.temperature = req.temperature
    if req.top_p is not None:
        sampling.top_p = req.top_p
    if req.top_k is not None:
        sampling.top_k = req.top_k
    generate = router_pb2.GenerateRequest(
        request_id=request_id, account_id=account_id, model=model_id,
        chat=router_pb2.ChatInput(messages=messages), sampling=sampling,
        provider_options_json=_options(req, tool_calls),
        end_user=end_user_id(account_id, req.metadata.user_id if req.metadata else None),
    )
    if (thinking := req.thinking) is not None and asks_for_thinking(req):
        generate.thinking.type = thinking.type
        generate.thinking.budget_tokens = thinking.budget_tokens or 0
        generate.thinking.display = thinking.display or ""
    return generate
