"""A chat body as the Responses input OpenAI's counter takes: every part of the conversation the
chat would send is in it, in the Responses shapes."""

from __future__ import annotations

from typing import Any

from services.router.backends.openai_counting import responses_count_body


def test_images_calls_named_choices_and_formats_take_their_responses_shapes() -> None:
    chat: dict[str, Any] = {
        "model": "gpt-x", "parallel_tool_calls": False,
        "messages": [
            {"role": "developer", "content": "Rules."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": "https://x.io/a.png"}},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA",
                                                                             "detail": "low"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "a"},
                                                               {"type": "text", "text": "b"}]},
        ],
        "tools": [{"type": "function", "function": {"name": "look", "description": "d", "strict": True,
                                                    "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
        "temperature": 0.2, "stream": True, "stream_options": {"include_usage": True},
    }
    assert responses_count_body(chat) == {
        "model": "gpt-x", "parallel_tool_calls": False,
        "input": [
            {"role": "developer", "content": "Rules."},
            {"role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "https://x.io/a.png", "detail": "auto"},
                {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}]},
            {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{\"a\":1}"},
            {"type": "function_call_output", "call_id": "c1", "output": "a\nb"},
        ],
        "tools": [{"type": "function", "name": "look", "description": "d", "strict": True,
                   "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "look"},
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
    }  # sampling and streaming do not change what is counted, and are not sent


def test_a_plain_conversation_is_its_messages() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "text"}}
    assert responses_count_body(chat) == {"model": "m", "input": [{"role": "user", "content": "Hi"}]}
