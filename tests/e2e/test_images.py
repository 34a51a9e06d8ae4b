"""Image inputs through the official SDKs: an OpenAI image_url part and an Anthropic image block reach
a provider of either kind in that provider's own shape, where the client put them among the text; a
model whose catalog entry takes no images refuses them in the API's own error format, and nothing is
forwarded."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.conftest import TRITON_MODEL, Stack

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
PNG_URL = f"data:image/png;base64,{PNG}"


def _sent(stack: Stack, model: str, marker: str) -> dict[str, object]:
    """The one request body the provider received for ``model`` that carries ``marker``."""
    [body] = [r["body"] for r in stack.upstream.requests_for(f"ok:{stack.model(model)}")
              if marker in json.dumps(r["body"])]
    return body


async def test_an_openai_image_part_reaches_either_kind_of_provider_in_its_shape(
    oa: openai.AsyncOpenAI, stack: Stack
) -> None:
    marker = uuid.uuid4().hex
    content: list[dict[str, object]] = [
        {"type": "text", "text": f"What is in this image? {marker}"},
        {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "Be brief."},
    ]
    for model in ("oa-vision", "an-vision"):
        answer = await oa.chat.completions.create(
            model=stack.model(model), max_tokens=50, messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
        )
        assert answer.choices[0].message.content and answer.usage is not None
    assert _sent(stack, "oa-vision", marker)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": f"What is in this image? {marker}"},
        {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "Be brief."},
    ]}]
    assert _sent(stack, "an-vision", marker)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": f"What is in this image? {marker}"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "Be brief."},
    ]}]


async def test_an_anthropic_image_block_reaches_either_kind_of_provider_in_its_shape(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """The image's cache_control reaches Anthropic on the image; an OpenAI-compatible provider caches
    by itself and gets the image as a data: URL."""
    marker = uuid.uuid4().hex
    for model in ("an-vision", "oa-vision"):
        answer = await claude.messages.create(model=stack.model(model), max_tokens=50, messages=[{
            "role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                 "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": f"Describe it. {marker}"},
            ],
        }])
        assert answer.content and answer.usage.input_tokens > 0
    assert _sent(stack, "an-vision", marker)["messages"] == [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG},
         "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": f"Describe it. {marker}"},
    ]}]
    assert _sent(stack, "oa-vision", marker)["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": PNG_URL}},
        {"type": "text", "text": f"Describe it. {marker}"},
    ]}]


@pytest.mark.parametrize("model", ["oa-ok", TRITON_MODEL])
async def test_a_model_that_takes_no_images_refuses_them_and_forwards_nothing(
    oa: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, stack: Stack, model: str
) -> None:
    name = model if model == TRITON_MODEL else stack.model(model)
    before = len(stack.upstream.requests_for(f"ok:{name}"))
    with pytest.raises(openai.BadRequestError) as refused:
        await oa.chat.completions.create(model=name, max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": PNG_URL}},
        ]}])
    error = refused.value.body
    assert isinstance(error, dict) and error["type"] == "invalid_request_error"
    assert error["param"] == "messages" and "does not take image input" in error["message"]
    with pytest.raises(anthropic.BadRequestError) as refused_too:
        await claude.messages.create(model=name, max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        ]}])
    assert refused_too.value.status_code == 400 and "does not take image input" in str(refused_too.value)
    assert len(stack.upstream.requests_for(f"ok:{name}")) == before  # nothing forwarded


async def test_a_server_not_told_to_fetch_urls_gets_inline_images_only(
    oa: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """A self-hosted server without the image_urls feature: an image by URL is refused in the API's
    own format with nothing forwarded (it would fetch it from inside the operator's network); the same
    image inline goes."""
    name = stack.model("oa-vision-inline")
    before = len(stack.upstream.requests_for(f"ok:{name}"))
    by_url: Any = [{"role": "user", "content": [{"type": "text", "text": "What is it?"},
                                                {"type": "image_url", "image_url": {"url": "http://10.0.0.1/x.png"}}]}]
    with pytest.raises(openai.BadRequestError) as refused:
        await oa.chat.completions.create(model=name, max_tokens=10, messages=by_url)
    assert refused.value.param == "messages" and "send the image inline" in refused.value.message
    with pytest.raises(anthropic.BadRequestError) as refused_too:
        await claude.messages.create(model=name, max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]}])
    assert "send the image inline" in str(refused_too.value)
    assert len(stack.upstream.requests_for(f"ok:{name}")) == before
    answer = await claude.messages.create(model=name, max_tokens=10, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}])
    assert answer.content and len(stack.upstream.requests_for(f"ok:{name}")) == before + 1


async def test_the_model_list_says_which_models_take_images(oa: openai.AsyncOpenAI, stack: Stack) -> None:
    vision = await oa.models.retrieve(stack.model("oa-vision"))
    text = await oa.models.retrieve(stack.model("oa-ok"))
    assert vision.model_extra and vision.model_extra["architecture"]["input_modalities"] == ["text", "image"]
    assert text.model_extra and text.model_extra["architecture"]["input_modalities"] == ["text"]


async def test_a_screenshot_a_tool_returned_reaches_anthropic_inside_its_tool_result(
    claude: anthropic.AsyncAnthropic, stack: Stack
) -> None:
    """A computer-use style turn: the tool's result is a screenshot. Anthropic gets it inside the
    tool_result; an OpenAI-compatible provider cannot (its tool messages take text only), so a model
    served only there refuses it with a 400 naming the messages, and nothing is forwarded."""
    marker = uuid.uuid4().hex
    messages: list[anthropic.types.MessageParam] = [
        {"role": "user", "content": f"Take a screenshot. {marker}"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "screenshot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "text", "text": "The screen:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ]}]},
    ]
    tools: list[anthropic.types.ToolParam] = [
        {"name": "screenshot", "description": "Take a screenshot.", "input_schema": {"type": "object"}},
    ]
    answer = await claude.messages.create(model=stack.model("an-vision"), max_tokens=50, messages=messages, tools=tools)
    assert answer.content
    assert _sent(stack, "an-vision", marker)["messages"][2] == {"role": "user", "content": [{
        "type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "text", "text": "The screen:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ],
    }]}
    before = len(stack.upstream.requests_for(f"ok:{stack.model('oa-vision')}"))
    with pytest.raises(anthropic.BadRequestError) as refused:
        await claude.messages.create(model=stack.model("oa-vision"), max_tokens=50, messages=messages, tools=tools)
    assert "images in a tool result are not supported" in str(refused.value)
    assert len(stack.upstream.requests_for(f"ok:{stack.model('oa-vision')}")) == before
