"""OpenAI request parsing: every class of bad input is a 400 naming the right ``param``; good requests
(including what the official SDK sends) parse; what we do not serve is refused by name."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.common.errors import InvalidRequest
from services.edge.convert import parse_chat_request, parse_completion_request, to_generate_request
from services.edge.wire import openai as w

USER = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> bytes:
    return orjson.dumps({"model": "m", "messages": USER, **fields})


def completion(**fields: Any) -> bytes:
    return orjson.dumps({"model": "m", "prompt": "Once upon", **fields})


def refused(parse: Any, body: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse(body)
    assert info.value.http_status == 400
    assert info.value.to_openai()["error"]["type"] == "invalid_request_error"
    return info.value


CHAT_BAD: list[tuple[str, bytes, str | None, str]] = [
    ("not json", b"{nope", None, "could not parse the JSON body"),
    ("empty body", b"", None, "could not parse the JSON body"),
    ("invalid utf-8", b'{"model": "\xff"}', None, "could not parse the JSON body"),
    ("lone surrogate", b'{"model": "\\ud800"}', None, "could not parse the JSON body"),
    ("deep nesting", b"[" * 5000, None, "could not parse the JSON body"),
    ("array body", b"[]", None, "must be a JSON object, but got an array"),
    ("missing model", orjson.dumps({"messages": USER}), "model", "Missing required parameter: 'model'."),
    ("missing messages", orjson.dumps({"model": "m"}), "messages", "Missing required parameter: 'messages'."),
    ("empty messages", chat(messages=[]), "messages", "empty array"),
    ("model not a string", chat(model=5), "model", "expected a string, but got an integer"),
    ("unknown field", chat(foo=1), "foo", "Unrecognized request argument supplied: foo"),
    ("unknown message field", chat(messages=[{"role": "user", "content": "x", "x": 1}]), "messages[0].x",
     "Unrecognized request argument"),
    ("message not an object", chat(messages=["hi"]), "messages[0]", "expected an object, but got a string"),
    ("missing role", chat(messages=[{"content": "x"}]), "messages[0].role", "Missing required parameter"),
    ("unknown role", chat(messages=[{"role": "function", "content": "x"}]), "messages[0].role",
     "Supported values are: 'system', 'developer', 'user', 'assistant' or 'tool'"),
    ("content wrong type", chat(messages=[{"role": "user", "content": 5}]), "messages[0].content",
     "expected a string or an array of content parts, but got an integer"),
    ("user content missing", chat(messages=[{"role": "user"}]), "messages[0].content", "Missing required"),
    ("unknown part type", chat(messages=[{"role": "user", "content": [{"type": "video"}]}]),
     "messages[0].content[0].type", "Invalid value for 'messages[0].content[0].type': 'video'"),
    ("text part without text", chat(messages=[{"role": "user", "content": [{"type": "text"}]}]),
     "messages[0].content[0].text", "Missing required parameter"),
    ("image in system", chat(messages=[{"role": "system", "content": [{"type": "image_url", "image_url": {}}]}]),
     "messages[0].content[0].type", "Supported values are: 'text'"),
    ("tool without id", chat(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id",
     "Missing required parameter"),
    ("image without url", chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
     "messages[0].content[0].image_url.url", "Missing required parameter"),
    ("image detail not known", chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "huge"}}]}]),
     "messages[0].content[0].image_url.detail", "'huge'"),
    ("image url not http", chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]),
     "messages[0].content[0].image_url.url", "an image must be an http(s) URL or a data: URL"),
    ("image data url of a pdf", chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:application/pdf;base64,JVBERi0="}}]}]),
     "messages[0].content[0].image_url.url", "data:image/<png|jpeg|gif|webp>;base64,<data>"),
    ("image data not base64", chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]),
     "messages[0].content[0].image_url.url", "the image data is not valid base64"),
    ("max_tokens zero", chat(max_tokens=0), "max_tokens", "expected a value >= 1, but got 0"),
    ("max_tokens as string", chat(max_tokens="5"), "max_tokens", "expected an integer, but got a string"),
    ("max_tokens float", chat(max_tokens=5.5), "max_tokens", "expected an integer, but got a number"),
    ("max_tokens beyond int32", chat(max_tokens=2**31), "max_tokens", "expected a value <= 2147483647"),
    ("max_completion_tokens negative", chat(max_completion_tokens=-1), "max_completion_tokens", ">= 1"),
    ("temperature too high", chat(temperature=2.5), "temperature", "expected a value <= 2"),
    ("temperature negative", chat(temperature=-0.1), "temperature", "expected a value >= 0"),
    ("temperature NaN", chat(temperature=1).replace(b'"temperature":1', b'"temperature":NaN'), "temperature",
     "finite number"),
    ("temperature beyond 64 bits", chat(temperature=7).replace(b'"temperature":7', b'"temperature":1' + b"0" * 30),
     "temperature", "expected a value <= 2"),
    ("role beyond 64 bits", chat(messages=[{"role": 7, "content": "x"}]).replace(b'"role":7', b'"role":9' + b"9" * 30),
     "messages[0].role", "Invalid value for 'messages[0].role': 9999"),
    ("temperature bool", chat(temperature=True), "temperature", "expected a number, but got a boolean"),
    ("top_p zero", chat(top_p=0), "top_p", "expected a value > 0"),
    ("top_p above one", chat(top_p=1.5), "top_p", "expected a value <= 1"),
    ("stop too many", chat(stop=["a", "b", "c", "d", "e"]), "stop", "maximum length 4"),
    ("stop wrong type", chat(stop=5), "stop", "expected a string or an array of strings"),
    ("stop item wrong type", chat(stop=["a", 1]), "stop[1]", "expected a string"),
    ("seed beyond int64", chat(seed=2**63), "seed", "<= 9223372036854775807"),
    ("penalty out of range", chat(presence_penalty=3), "presence_penalty", "<= 2"),
    ("frequency penalty out of range", chat(frequency_penalty=-3), "frequency_penalty", ">= -2"),
    ("stream not bool", chat(stream="yes"), "stream", "expected a boolean, but got a string"),
    ("stream_options wrong field", chat(stream=True, stream_options={"usage": True}), "stream_options.usage",
     "Unrecognized request argument"),
    ("tool_choice unknown string", chat(tool_choice="sometimes"), "tool_choice",
     "Supported values are: 'none', 'auto' or 'required'"),
    ("tool bad name", chat(tools=[{"type": "function", "function": {"name": "has space"}}]),
     "tools[0].function.name", "Invalid 'tools[0].function.name'"),
    ("response_format unknown", chat(response_format={"type": "yaml"}), "response_format.type",
     "'json_object' or 'json_schema'"),
    ("json_schema missing", chat(response_format={"type": "json_schema"}), "response_format.json_schema",
     "Missing required parameter"),
    ("metadata too long", chat(metadata={"k": "v" * 513}), "metadata", "values up to 512"),
    ("top_logprobs out of range", chat(top_logprobs=21), "top_logprobs", "<= 20"),
    ("n zero", chat(n=0), "n", "Expected a value >= 1, but got 0 instead."),
    ("n over OpenAI's limit", chat(n=129), "n", "Expected a value <= 128, but got 129 instead."),
    ("top_logprobs without logprobs", chat(top_logprobs=3), "top_logprobs", "'logprobs' must be true"),
    ("logit_bias out of range", chat(logit_bias={"42": 101}), "logit_bias.42", "<= 100"),
    ("huge integer in a tool schema", chat(tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"maximum": 1}}}]).replace(b'"maximum":1', b'"maximum":1' + b"0" * 30),
     "tools[0].function.parameters", "integers must fit in 64 bits"),
    ("NaN in a tool schema", chat(tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"maximum": 1}}}]).replace(b'"maximum":1', b'"maximum":NaN'),
     "tools[0].function.parameters", "numbers must be finite"),
]


@pytest.mark.parametrize(("case", "body", "param", "message"), CHAT_BAD, ids=[c[0] for c in CHAT_BAD])
def test_bad_chat_request_is_a_400_naming_the_param(case: str, body: bytes, param: str | None, message: str) -> None:
    err = refused(parse_chat_request, body)
    assert err.param == param
    assert message in err.message


def test_image_parts_become_images_of_the_user_message_where_they_were() -> None:
    """Placed by offset in the message's text, with no newline joined across an image (adjacent text
    parts are joined with one, as before); the detail is kept for OpenAI-compatible providers."""
    png = "data:image/png;base64,iVBORw0KGgo="
    parsed = parse_chat_request(chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
        {"type": "text", "text": "what"}, {"type": "text", "text": "is"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}, {"type": "text", "text": "?"},
    ]}]))
    request = to_generate_request(parsed, "req_1", "acct", "m", default_max_tokens=16)
    [message] = request.chat.messages
    assert message.content == "what\nis?"
    assert [(i.offset, i.url, i.detail) for i in message.images] == [
        (0, png, "low"), (7, "https://example.com/a.jpg", ""),
    ]


UNSUPPORTED_CHAT: list[tuple[str, bytes, str, str]] = [
    ("audio part", chat(messages=[{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]),
     "messages[0].content[0]", "'input_audio' are not supported"),
    ("file part", chat(messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]),
     "messages[0].content[0]", "'file' are not supported"),
    ("audio modality", chat(modalities=["text", "audio"]), "modalities", "Audio output is not supported"),
    ("assistant audio", chat(messages=[*USER, {"role": "assistant", "audio": {"id": "a"}}]), "messages[1].audio",
     "not supported"),
    ("function_call", chat(messages=[*USER, {"role": "assistant", "function_call": {"name": "f"}}]),
     "messages[1].function_call", "deprecated"),
    ("stream_options without stream", chat(stream_options={"include_usage": True}), "stream_options",
     "only allowed when 'stream' is enabled"),
    ("required tool_choice without tools", chat(tool_choice="required"), "tool_choice", "only allowed when"),
    ("parallel_tool_calls without tools", chat(parallel_tool_calls=False), "parallel_tool_calls",
     "only allowed when 'tools' are specified"),
]


@pytest.mark.parametrize(("case", "body", "param", "message"), UNSUPPORTED_CHAT, ids=[c[0] for c in UNSUPPORTED_CHAT])
def test_valid_but_unserved_chat_features_are_refused_by_name(case: str, body: bytes, param: str, message: str) -> None:
    err = refused(parse_chat_request, body)
    assert err.param == param
    assert message in err.message


def calls(*ids: str) -> dict[str, Any]:
    """An assistant turn calling a tool once per id."""
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": "get", "arguments": "{}"}} for i in ids]}


def answer(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "42"}


BROKEN_TOOL_TURNS: list[tuple[str, list[dict[str, Any]], str, str]] = [
    ("a tool turn with no call before it", [*USER, answer("call_1")], "messages[1].role",
     "must be a response to a preceding message with 'tool_calls'"),
    ("a tool turn after a user turn", [*USER, calls("call_1"), answer("call_1"), *USER, answer("call_1")],
     "messages[4].role", "must be a response to a preceding message with 'tool_calls'"),
    ("an answer to a call that was not made", [*USER, calls("call_1"), answer("call_2")],
     "messages[2].tool_call_id", "'tool_call_id' of 'call_2' not found in 'tool_calls' of previous message"),
    ("a call left unanswered", [*USER, calls("call_1", "call_2"), answer("call_2"), *USER], "messages[3].role",
     "The following tool_call_ids did not have response messages: call_1"),
    ("calls and the conversation ends", [*USER, calls("call_1", "call_2")], "messages",
     "did not have response messages: call_1, call_2"),
]


@pytest.mark.parametrize(("case", "messages", "param", "message"), BROKEN_TOOL_TURNS,
                         ids=[c[0] for c in BROKEN_TOOL_TURNS])
def test_tool_turns_that_do_not_answer_their_calls_are_refused(
    case: str, messages: list[dict[str, Any]], param: str, message: str
) -> None:
    err = refused(parse_chat_request, chat(messages=messages))
    assert (err.param, err.code) == (param, None)
    assert message in err.message


def test_tool_turns_that_answer_every_call_in_any_order_parse() -> None:
    req = parse_chat_request(chat(messages=[
        *USER, calls("call_1", "call_2"), answer("call_2"), answer("call_1"), {"role": "assistant", "content": "ok"},
        *USER, calls("call_3"), answer("call_3"),
    ]))
    assert [m.role for m in req.messages] == ["user", "assistant", "tool", "tool", "assistant", "user", "assistant",
                                              "tool"]


COMPLETION_BAD: list[tuple[str, bytes, str | None, str]] = [
    ("missing prompt", orjson.dumps({"model": "m"}), "prompt", "Missing required parameter: 'prompt'."),
    ("prompt wrong type", completion(prompt=5), "prompt", "expected a string, an array of strings, or an array"),
    ("mixed prompt list", completion(prompt=["a", 1]), "prompt", "all strings or all token-id arrays"),
    ("batch of strings and token arrays", completion(prompt=["a", [3]]), "prompt", "all strings or all"),
    ("prompt of another kind", completion(prompt=[{"a": 1}]), "prompt", "all strings or all token-id arrays"),
    ("empty prompt list", completion(prompt=[]), "prompt", "an empty array is not supported"),
    ("bad token id in a batch", completion(prompt=[[1, 2], [3, -1]]), "prompt[1][1]", "token ids are integers"),
    ("batch times n over 128", completion(prompt=["a"] * 65, n=2), "prompt",
     "65 prompts with n=2 ask for 130 choices; one request may ask for at most 128"),
    ("empty token array", completion(prompt=[[]]), "prompt[0]", "must not be empty"),
    ("negative token id", completion(prompt=[1, -2]), "prompt[1]", "token ids are integers from 0"),
    ("token id over int32", completion(prompt=[2**31]), "prompt[0]", "token ids are integers from 0"),
    ("token id of another kind", completion(prompt=[1, "a"]), "prompt[1]", "token ids are integers"),
    ("nested bad token id", completion(prompt=[[1, True]]), "prompt[0][1]", "token ids are integers"),
    ("suffix", completion(suffix="end"), "suffix", "suffix"),
    ("logprobs over 20", completion(logprobs=21), "logprobs", "expected a value <= 20"),
    ("negative logprobs", completion(logprobs=-1), "logprobs", "expected a value >= 0"),
    ("n zero", completion(n=0), "n", "Expected a value >= 1"),
    ("best_of", completion(best_of=2), "best_of", "only best_of=1"),
    ("unknown field", completion(messages=USER), "messages", "Unrecognized request argument supplied: messages"),
    ("max_tokens zero", completion(max_tokens=0), "max_tokens", ">= 1"),
]


@pytest.mark.parametrize(("case", "body", "param", "message"), COMPLETION_BAD, ids=[c[0] for c in COMPLETION_BAD])
def test_bad_completion_request_is_a_400_naming_the_param(
    case: str, body: bytes, param: str | None, message: str
) -> None:
    err = refused(parse_completion_request, body)
    assert err.param == param
    assert message in err.message


def test_top_level_unknown_field_matches_openai_wording_and_code() -> None:
    err = refused(parse_chat_request, chat(top_k=5))
    assert err.to_openai() == {"error": {
        "message": "Unrecognized request argument supplied: top_k", "type": "invalid_request_error",
        "param": "top_k", "code": None,
    }}


def test_error_message_quotes_at_most_a_short_value() -> None:
    err = refused(parse_chat_request, chat(messages=[{"role": "x" * 10_000, "content": "secret"}]))
    assert len(err.message) < 300
    assert "secret" not in err.message


def test_error_is_not_chained_to_the_validation_error_that_holds_the_prompt() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(chat(messages=[{"role": "user", "content": 5, "x": "my secret prompt"}]))
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_full_featured_chat_request_parses() -> None:
    req = parse_chat_request(chat(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Rules"}], "name": "ops"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "u"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{}"}}]},
            {"role": "tool", "content": "42", "tool_call_id": "call_1"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}], "refusal": "no"},
        ],
        max_tokens=5, max_completion_tokens=7, temperature=0.2, top_p=0.9, stop="END", seed=-1, n=1,
        user="u-1", stream=True, stream_options={"include_usage": True}, presence_penalty=0.5,
        frequency_penalty=-0.5, logprobs=False, top_logprobs=0, parallel_tool_calls=False,
        tools=[{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "get"}},
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        metadata={"k": "v"}, store=False, service_tier="auto", logit_bias={"1": -100},
        reasoning_effort="low", modalities=["text"],
    ))
    assert req.effective_max_tokens == 7  # max_completion_tokens wins
    assert isinstance(req.messages[3], w.AssistantMessage)
    assert isinstance(req.response_format, w.JsonSchemaFormat)
    assert req.response_format.json_schema.schema_ == {"type": "object"}


def test_what_the_official_sdk_sends_parses() -> None:
    import httpx2
    import openai

    bodies: list[bytes] = []

    def capture(request: httpx2.Request) -> httpx2.Response:
        bodies.append(request.content)
        return httpx2.Response(400, json={"error": {"message": "stop", "type": "invalid_request_error"}})

    client = openai.OpenAI(api_key="k", base_url="http://edge/v1", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(capture)))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                                       temperature=0.1, stop=["x"], seed=1, stream=True,
                                       stream_options={"include_usage": True})
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="m", prompt="hi", max_tokens=3)
    assert parse_chat_request(bodies[0]).stream is True
    assert parse_completion_request(bodies[1]).prompt == "hi"


def test_single_string_prompt_list_is_accepted() -> None:
    assert parse_completion_request(completion(prompt=["just one"])).prompt == ["just one"]


def test_prompt_batches_and_n_within_the_limit_parse() -> None:
    assert parse_completion_request(completion(prompt=["a", "b"], n=64)).prompt == ["a", "b"]
    assert parse_completion_request(completion(prompt=[[1, 2], [3]])).prompt == [[1, 2], [3]]
    assert parse_chat_request(chat(n=128)).n == 128
