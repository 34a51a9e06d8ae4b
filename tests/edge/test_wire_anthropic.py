"""Anthropic request parsing: bad input is a 400 worded as Anthropic words it (``<location>: <problem>``);
good requests (including what the official SDK sends) parse; what we do not serve is refused by name."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.common.errors import InvalidRequest
from services.edge.convert import parse_messages_request, to_generate_request
from services.edge.wire import anthropic as w

USER = [{"role": "user", "content": "hi"}]


def body(**fields: Any) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 16, "messages": USER, **fields})


def refused(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse_messages_request(raw)
    assert info.value.http_status == 400
    assert info.value.to_anthropic()["error"]["type"] == "invalid_request_error"
    return info.value


def blocks(*content: dict[str, Any], role: str = "user") -> list[dict[str, Any]]:
    return [{"role": role, "content": list(content)}]


BAD: list[tuple[str, bytes, str]] = [
    ("not json", b"{", "The request body is not valid JSON"),
    ("array body", b"[1]", "must be a JSON object"),
    ("missing max_tokens", orjson.dumps({"model": "m", "messages": USER}), "max_tokens: Field required"),
    ("missing model", orjson.dumps({"max_tokens": 1, "messages": USER}), "model: Field required"),
    ("max_tokens zero", body(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
    ("max_tokens string", body(max_tokens="16"), "max_tokens: Input should be a valid integer"),
    ("empty messages", body(messages=[]), "messages: List should have at least 1 item"),
    ("unknown field", body(foo=1), "foo: Extra inputs are not permitted"),
    ("unknown message field", body(messages=[{"role": "user", "content": "x", "name": "n"}]),
     "messages.0.name: Extra inputs are not permitted"),
    ("system role in messages", body(messages=[{"role": "system", "content": "x"}]),
     "messages.0.role: Input should be 'user' or 'assistant'"),
    ("content wrong type", body(messages=[{"role": "user", "content": 7}]),
     "messages.0.content: Input should be a string or an array of content blocks"),
    ("block without type", body(messages=blocks({"text": "x"})), "messages.0.content.0.type: Field required"),
    ("unknown block type", body(messages=blocks({"type": "video"})), "messages.0.content.0.type: Input should be"),
    ("text block without text", body(messages=blocks({"type": "text"})),
     "messages.0.content.0.text.text: Field required"),
    ("extra field in tool_use", body(messages=[*USER, *blocks(
        {"type": "tool_use", "id": "t", "name": "n", "input": {}, "text": "x"}, role="assistant")]),
     "messages.1.content.0.tool_use.text: Extra inputs are not permitted"),
    ("temperature above one", body(temperature=1.5), "temperature: Input should be less than or equal to 1"),
    ("top_p zero", body(top_p=0), "top_p: Input should be greater than 0"),
    ("top_k negative", body(top_k=-1), "top_k: Input should be greater than or equal to 0"),
    ("stop_sequences wrong type", body(stop_sequences="END"), "stop_sequences: Input should be a valid array"),
    ("system wrong type", body(system=5), "system: Input should be a string or an array of text blocks"),
    ("system block wrong type", body(system=[{"type": "image"}]), "system.0.type: Input should be 'text'"),
    ("tool missing schema", body(tools=[{"name": "get"}]), "tools.0.custom.input_schema: Field required"),
    ("tool extra field", body(tools=[{"name": "get", "input_schema": {}, "defer_loading": True}]),
     "tools.0.custom.defer_loading: Extra inputs are not permitted"),
    ("tool_choice tool without name", body(tool_choice={"type": "tool"}),
     "tool_choice: 'name' is required when type is 'tool'"),
    ("metadata unknown field", body(metadata={"session": "s"}), "metadata.session: Extra inputs are not permitted"),
    ("huge integer in tool input", body(messages=[*USER, *blocks(
        {"type": "tool_use", "id": "t", "name": "n", "input": {"x": 1}}, role="assistant")]).replace(
        b'"x":1', b'"x":' + b"9" * 30), "messages.1.content.0.tool_use.input: integers must fit in 64 bits"),
    ("Infinity in tool schema", body(tools=[{"name": "t", "input_schema": {"x": 1}}]).replace(
        b'"x":1', b'"x":Infinity'), "tools.0.custom.input_schema: numbers must be finite"),
    ("temperature NaN", body(temperature=1).replace(b'"temperature":1', b'"temperature":NaN'),
     "temperature: Input should be a finite number"),
]


@pytest.mark.parametrize(("case", "raw", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_messages_request_is_a_400_in_anthropic_wording(case: str, raw: bytes, message: str) -> None:
    assert message in refused(raw).message


PNG = "iVBORw0KGgo="  # base64 of the PNG signature: the parse step checks base64, not the image


def image(source: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"type": "image", "source": source, **fields}


BAD_IMAGES: list[tuple[str, bytes, str]] = [
    ("no media type", body(messages=blocks(image({"type": "base64", "data": PNG}))),
     "messages.0.content.0.image.source.base64.media_type: Field required"),
    ("a media type not taken", body(messages=blocks(image({"type": "base64", "media_type": "image/bmp",
                                                            "data": PNG}))),
     "messages.0.content.0.image.source.base64.media_type: Input should be"),
    ("data not base64", body(messages=blocks(image({"type": "base64", "media_type": "image/png",
                                                   "data": "not base64!"}))),
     "messages.0.content.0.source.data: the image data is not valid base64"),
    ("a URL that is not http", body(messages=blocks(image({"type": "url", "url": "ftp://x/y.png"}))),
     "messages.0.content.0.source.url: an image must be an http(s) URL or a data: URL"),
    ("a source kind not served", body(messages=blocks(image({"type": "file", "file_id": "file_1"}))),
     "messages.0.content.0.image.source"),
    ("an image from the assistant", body(messages=[*USER, *blocks(
        image({"type": "url", "url": "https://x/y.png"}), role="assistant")]),
     "messages.1.content.0: 'image' blocks may only appear in user messages"),
    ("a tool result's image not base64", body(messages=[
        *USER, *blocks({"type": "tool_use", "id": "t", "name": "n", "input": {}}, role="assistant"),
        *blocks({"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "text", "text": "shot"}, image({"type": "base64", "media_type": "image/png", "data": "%%"})]})]),
     "messages.2.content.0.content.1.source.data: the image data is not valid base64"),
]


@pytest.mark.parametrize(("case", "raw", "message"), BAD_IMAGES, ids=[c[0] for c in BAD_IMAGES])
def test_a_bad_image_block_is_a_400_that_says_where(case: str, raw: bytes, message: str) -> None:
    assert message in refused(raw).message


def test_image_blocks_become_images_of_the_user_turn_where_they_were() -> None:
    """Base64 as a data: URL, a URL as it is; placed by offset in the turn's text, with no newline
    joined across an image; an image's cache_control stays on the image."""
    raw = body(messages=blocks(
        {"type": "text", "text": "compare"}, image({"type": "base64", "media_type": "image/png", "data": PNG}),
        {"type": "text", "text": "with"}, {"type": "text", "text": "this"},
        image({"type": "url", "url": "https://example.com/b.jpg"}, cache_control={"type": "ephemeral"}),
    ))
    request = to_generate_request(parse_messages_request(raw), "req_1", "acct", "m", default_max_tokens=16)
    [turn] = request.chat.messages
    assert turn.content == "comparewith\nthis"
    assert [(i.offset, i.url, i.cached) for i in turn.images] == [
        (7, f"data:image/png;base64,{PNG}", False), (16, "https://example.com/b.jpg", True),
    ]


def test_a_tool_results_images_become_images_of_its_tool_message() -> None:
    """A tool that returned a screenshot: its text and image, placed as in a user turn; the result's
    breakpoint (on the block or any of its parts) at its end, since the result is one turn."""
    raw = body(messages=[
        *USER, *blocks({"type": "tool_use", "id": "t1", "name": "screenshot", "input": {}}, role="assistant"),
        *blocks({"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": "the screen:"},
            image({"type": "base64", "media_type": "image/png", "data": PNG}, cache_control={"type": "ephemeral"}),
        ]}),
    ])
    request = to_generate_request(parse_messages_request(raw), "req_1", "acct", "m", default_max_tokens=16)
    tool = request.chat.messages[2]
    assert (tool.role, tool.tool_call_id, tool.content) == ("tool", "t1", "the screen:")
    assert [(i.offset, i.url, i.cached) for i in tool.images] == [(11, f"data:image/png;base64,{PNG}", False)]
    assert [(b.offset, b.ttl) for b in tool.cache_breakpoints] == [(11, "")]


UNSUPPORTED: list[tuple[str, bytes, str]] = [
    ("document block", body(messages=blocks({"type": "document", "source": {"type": "text", "data": "d"}})),
     "messages.0.content.0: 'document' content is not supported"),
    ("document in tool result", body(messages=[
        *USER, *blocks({"type": "tool_use", "id": "t", "name": "n", "input": {}}, role="assistant"),
        *blocks({"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}}]})]),
     "messages.2.content.0.content.0: 'document' content is not supported"),
    ("thinking from the user", body(messages=blocks({"type": "redacted_thinking", "data": "d"})),
     "messages.0.content.0: 'redacted_thinking' blocks may only appear in assistant messages"),
    ("thinking on a budget too small", body(thinking={"type": "enabled", "budget_tokens": 1000}),
     "thinking.budget_tokens: Input should be at least 1024"),
    ("server tool", body(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]),
     "tools.0: server tool 'web_search_20250305' is not supported"),
    ("assistant first", body(messages=[{"role": "assistant", "content": "hi"}]),
     "messages.0.role: the first message must use the 'user' role"),
    ("tool_use from the user", body(messages=blocks({"type": "tool_use", "id": "t", "name": "n", "input": {}})),
     "messages.0.content.0: 'tool_use' blocks may only appear in assistant messages"),
    ("tool_result from the assistant", body(messages=[*USER, *blocks(
        {"type": "tool_result", "tool_use_id": "t", "content": "x"}, role="assistant")]),
     "messages.1.content.0: 'tool_result' blocks may only appear in user messages"),
]


@pytest.mark.parametrize(("case", "raw", "message"), UNSUPPORTED, ids=[c[0] for c in UNSUPPORTED])
def test_valid_but_unserved_anthropic_features_are_refused_by_name(case: str, raw: bytes, message: str) -> None:
    err = refused(raw)
    assert message in err.message
    assert err.param == message.split(":")[0]


def use(*ids: str) -> list[dict[str, Any]]:
    return blocks(*({"type": "tool_use", "id": i, "name": "n", "input": {}} for i in ids), role="assistant")


def result(*ids: str) -> list[dict[str, Any]]:
    return blocks(*({"type": "tool_result", "tool_use_id": i, "content": "x"} for i in ids))


BROKEN_TOOL_TURNS: list[tuple[str, list[dict[str, Any]], str]] = [
    ("a result with no use before it", [*result("t1")],
     "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: t1"),
    ("a result for a use that was not made", [*USER, *use("t1"), *result("t1", "t2")],
     "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: t2"),
    ("a result two turns late", [*USER, *use("t1"), *result("t1"), {"role": "assistant", "content": "ok"},
                                 *result("t1")],
     "messages.4.content.0: unexpected `tool_use_id`"),
    ("a use left unanswered", [*USER, *use("t1", "t2"), *result("t2")],
     "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: t1"),
    ("a use and the conversation ends", [*USER, *use("t1")],
     "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: t1"),
]


@pytest.mark.parametrize(("case", "messages", "message"), BROKEN_TOOL_TURNS, ids=[c[0] for c in BROKEN_TOOL_TURNS])
def test_tool_results_that_do_not_answer_their_uses_are_refused(
    case: str, messages: list[dict[str, Any]], message: str
) -> None:
    err = refused(body(messages=messages))
    assert message in err.message
    assert err.param == message.split(":")[0]


def test_results_spread_over_consecutive_user_messages_answer_the_turn_before() -> None:
    """Consecutive messages of one role are one turn (Anthropic merges them)."""
    req = parse_messages_request(body(messages=[
        *USER, *use("t1"), *use("t2"), *result("t2"), *USER, *result("t1"),
    ]))
    assert [m.role for m in req.messages] == ["user", "assistant", "assistant", "user", "user", "user"]


def test_error_body_has_anthropic_shape() -> None:
    assert refused(body(foo=1)).to_anthropic() == {
        "type": "error", "error": {"type": "invalid_request_error", "message": "foo: Extra inputs are not permitted"},
    }


def test_full_featured_messages_request_parses() -> None:
    req = parse_messages_request(body(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "What is the weather?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                              {"type": "tool_use", "id": "tu_1", "name": "weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "sunny"},
                                         {"type": "text", "text": "And tomorrow?"}]},
        ],
        stop_sequences=["\n\nHuman:"], temperature=0.5, top_p=0.9, top_k=40, stream=True,
        metadata={"user_id": "u-1"}, thinking={"type": "disabled"}, service_tier="auto",
        tools=[{"name": "weather", "description": "Weather by city", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    ))
    assert isinstance(req.messages[1].content, list)
    assert isinstance(req.messages[1].content[1], w.ToolUseBlock)
    assert isinstance(req.tools, list) and isinstance(req.tools[0], w.Tool)


def test_what_the_official_sdk_sends_parses() -> None:
    import anthropic
    import httpx2

    bodies: list[bytes] = []

    def capture(request: httpx2.Request) -> httpx2.Response:
        bodies.append(request.content)
        return httpx2.Response(400, json={"type": "error", "error": {"type": "invalid_request_error",
                                                                      "message": "stop"}})

    client = anthropic.Anthropic(api_key="k", base_url="http://edge", max_retries=0,
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(capture)))
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="m", max_tokens=8, system="s", messages=[{"role": "user", "content": "hi"}],
                               stop_sequences=["x"], metadata={"user_id": "u"})
    req = parse_messages_request(bodies[0])
    assert req.system == "s"
    assert req.max_tokens == 8
