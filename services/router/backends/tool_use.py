"""Tool use in the router's vocabulary, turned into what each provider's request needs.

The edge writes tools for both front doors in OpenAI's vocabulary (``services/edge/convert_openai.py``,
``convert_anthropic.py``): ``tools`` are function tools, ``tool_choice`` is ``auto``/``none``/
``required`` or a named function, ``parallel_tool_calls`` a flag, and ``assistant_tool_calls`` holds the
calls of earlier assistant turns, keyed by the turn's index in the chat (a ``ChatTurn`` carries text
only). The OpenAI-compatible adapter puts those calls back on their turns; the Anthropic adapter
translates everything into its own shapes here. Malformed input is the client's error: a clear 400,
nothing sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from services.common.errors import InvalidRequest, UnsupportedByBackend
from services.common.numbers import whole_number

ASSISTANT_TOOL_CALLS = "assistant_tool_calls"
TOOL_OPTIONS = frozenset({"tools", "tool_choice", "parallel_tool_calls", ASSISTANT_TOOL_CALLS})
_ANTHROPIC_CHOICE = {"auto": "auto", "required": "any", "none": "none"}


def assistant_tool_calls(options: Mapping[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """The earlier assistant turns' calls, by turn index, each ``{"id", "type", "function": {"name",
    "arguments"}}`` as OpenAI writes them."""
    raw = options.get(ASSISTANT_TOOL_CALLS) or {}
    if not isinstance(raw, dict):
        raise InvalidRequest("assistant_tool_calls must be an object", param="messages")
    out: dict[int, list[dict[str, Any]]] = {}
    for key, calls in raw.items():
        index = whole_number(str(key), max_digits=9)
        if index is None or not isinstance(calls, list):
            raise InvalidRequest("assistant_tool_calls must map message indexes to lists", param="messages")
        out[index] = [_checked_call(call) for call in calls]
    return out


def _checked_call(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not call.get("id"):
        raise InvalidRequest("each tool call needs an id and a function name", param="messages")
    return {"id": str(call["id"]), "type": "function",
            "function": {"name": function["name"], "arguments": str(function.get("arguments") or "")}}


def call_input(call: Mapping[str, Any]) -> dict[str, Any]:
    """A call's arguments as the JSON object Anthropic's ``tool_use.input`` must be."""
    arguments = call["function"]["arguments"] or "{}"
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"the arguments of tool call {call['id']!r} are not a JSON object, which this model requires",
            param="messages",
        )
    return value


def without_cache_control(tools: Any) -> Any:
    """Tools for an OpenAI-compatible provider: an Anthropic client's ``cache_control`` beside a tool
    is not OpenAI's (which caches prefixes by itself) and would be refused as an unknown field."""
    if not isinstance(tools, list):
        return tools
    return [{k: v for k, v in t.items() if k != "cache_control"} if isinstance(t, dict) else t for t in tools]


def anthropic_tools(options: Mapping[str, Any]) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` for Anthropic's Messages API (empty when no tools were given)."""
    tools = options.get("tools")
    if not tools:
        return {}
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    out: dict[str, Any] = {"tools": [_anthropic_tool(i, tool) for i, tool in enumerate(tools)]}
    choice = _anthropic_choice(options.get("tool_choice"))
    if options.get("parallel_tool_calls") is False:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _anthropic_tool(index: int, tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise UnsupportedByBackend("only function tools with a name are supported by this model",
                                   param=f"tools[{index}]")
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    out: dict[str, Any] = {"name": function["name"], "input_schema": parameters}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    if isinstance(tool.get("cache_control"), dict):  # an Anthropic client's breakpoint, kept beside it
        out["cache_control"] = tool["cache_control"]
    return out


def _anthropic_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _ANTHROPIC_CHOICE:
        return {"type": _ANTHROPIC_CHOICE[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise InvalidRequest("tool_choice must be auto, none, required or a named function", param="tool_choice")
