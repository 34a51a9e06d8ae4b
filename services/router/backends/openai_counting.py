"""How an OpenAI-compatible server counts a request's prompt, where it can (``OpenAICompatBackend.
count_tokens``): the request to send for the chat or prompt the router would send.

- ``tokenize`` (vLLM): ``POST /tokenize`` at the server's root, beside ``/v1``: the chat as the
  completion would send it (messages, tools), templated with the generation prompt as the server
  renders it for a generation, or a completion's prompt with its special tokens; answered ``count``.
- ``input_tokens`` (OpenAI's own API): ``POST /responses/input_tokens``, answered ``input_tokens``.
  Chat Completions has no counter, so the chat body is written as the Responses input it is:
  messages as message items, an assistant turn's calls as ``function_call`` items after its text,
  tool results as ``function_call_output`` items, function tools, ``tool_choice``,
  ``reasoning_effort`` and ``response_format`` in the Responses shapes. The same conversation,
  counted by the provider that serves it; Chat Completions' own message framing may make its
  ``prompt_tokens`` a few tokens apart (not measured here: no OpenAI account is reachable from this
  project's machines). A legacy completion's prompt is not a Responses input: not counted this way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CountRequest:
    url: str
    body: dict[str, Any]
    field: str  # the answer's field that holds the count


def count_request(base_url: str, generation: dict[str, Any], *, tokenize: bool) -> CountRequest:
    """The counting request for ``generation`` (the body a generation would send to ``base_url``, the
    deployment's endpoint): vLLM's when the server has ``tokenize``, else OpenAI's."""
    if tokenize:
        chat = "messages" in generation
        names = ("model", "messages", "tools") if chat else ("model", "prompt")
        body: dict[str, Any] = {k: v for k, v in generation.items() if k in names}
        body["add_generation_prompt" if chat else "add_special_tokens"] = True
        return CountRequest(base_url.removesuffix("/v1") + "/tokenize", body, "count")
    body = responses_count_body(generation)
    return CountRequest(base_url + "/responses/input_tokens", body, "input_tokens")


def responses_count_body(chat: dict[str, Any]) -> dict[str, Any]:
    """The ``/responses/input_tokens`` body for a Chat Completions body."""
    body: dict[str, Any] = {"model": chat["model"],
                            "input": [item for message in chat["messages"] for item in _items(message)]}
    tools = [_tool(t) for t in chat.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    if tools:
        body["tools"] = tools
    if (choice := chat.get("tool_choice")) is not None:
        body["tool_choice"] = choice if isinstance(choice, str) else {
            "type": "function", "name": (choice.get("function") or {}).get("name")}
    if chat.get("parallel_tool_calls") is not None:
        body["parallel_tool_calls"] = chat["parallel_tool_calls"]
    if chat.get("reasoning_effort") is not None:
        body["reasoning"] = {"effort": chat["reasoning_effort"]}
    fmt = chat.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        body["text"] = {"format": {"type": fmt["type"], **(fmt.get("json_schema") or {})}}
    return body


def _items(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    role, content = message["role"], message.get("content")
    if role == "tool":
        yield {"type": "function_call_output", "call_id": message.get("tool_call_id", ""),
               "output": _text(content)}
        return
    if role == "assistant":
        if content:
            yield {"role": "assistant", "content": _text(content)}
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            yield {"type": "function_call", "call_id": call.get("id", ""), "name": function.get("name", ""),
                   "arguments": function.get("arguments", "")}
        return
    parts = content if isinstance(content, str) else [_part(p) for p in content or ()]
    yield {"role": role, "content": parts}


def _part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image_url":
        image = part.get("image_url") or {}
        detail = image.get("detail") or "auto"
        return {"type": "input_image", "image_url": image.get("url", ""), "detail": detail}
    return {"type": "input_text", "text": part.get("text", "")}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content or () if isinstance(p, dict))


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    return {"type": "function", **{k: v for k, v in function.items() if k in (
        "name", "description", "parameters", "strict")}}
