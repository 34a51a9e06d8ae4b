"""``/v1/embeddings`` at the edge's boundary: what a request may hold (refused by the item at fault),
what the router is sent, the answer in both encodings, and which models serve which endpoint."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import numpy as np
import pytest
from openai.types import CreateEmbeddingResponse

from services.common.errors import InvalidRequest
from services.common.events.catalog import ModelEntry
from services.edge.admission.reservation import reserve_for_embedding
from services.edge.capabilities import check_embeds, check_generates
from services.edge.convert_embeddings import build_embeddings, parse_embeddings_request, to_embed_request
from services.edge.end_user import end_user_id
from tollgate.router.v1 import router_pb2


def parse(**body: Any) -> tuple[Any, list[router_pb2.EmbedInput]]:
    return parse_embeddings_request(json.dumps({"model": "emb", **body}).encode())


def refusal(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as refused:
        parse(**body)
    return refused.value


@pytest.mark.parametrize(("value", "expected"), [
    ("one text", [("text", "one text")]),
    (["a", "b"], [("text", "a"), ("text", "b")]),
    ([1, 2, 3], [("tokens", [1, 2, 3])]),  # one input as token ids
    ([[1, 2], [3]], [("tokens", [1, 2]), ("tokens", [3])]),
])
def test_the_four_forms_of_input(value: Any, expected: list[tuple[str, Any]]) -> None:
    _, inputs = parse(input=value)
    got = [(i.WhichOneof("input"), i.text if i.HasField("text") else list(i.tokens.ids)) for i in inputs]
    assert got == expected


@pytest.mark.parametrize(("value", "param", "words"), [
    ("", "input", "empty string"),
    ([], "input", "empty array"),
    (["ok", ""], "input[1]", "empty string"),
    (["ok", 5], "input[1]", "strings only"),
    ([[1], "x"], "input[1]", "strings only"),
    ([1, "x"], "input[1]", "token ids are integers"),
    ([1, -1], "input[1]", "token ids are integers"),
    ([1, True], "input[1]", "token ids are integers"),
    ([[1], []], "input[1]", "must not be empty"),
    ([[1], [2**31]], "input[1][0]", "token ids are integers"),
    (["x"] * 2049, "input", "at most 2048"),
])
def test_a_bad_input_is_refused_by_the_item_at_fault(value: Any, param: str, words: str) -> None:
    refused = refusal(input=value)
    assert refused.param == param and words in refused.message
    assert refused.http_status == 400


@pytest.mark.parametrize(("body", "param"), [
    ({"input": 5}, "input"),
    ({}, "input"),
    ({"input": "x", "encoding_format": "binary"}, "encoding_format"),
    ({"input": "x", "dimensions": 0}, "dimensions"),
    ({"input": "x", "dimensions": "256"}, "dimensions"),
    ({"input": "x", "temperature": 1}, "temperature"),  # unknown fields are refused, as OpenAI does
])
def test_the_rest_of_the_request_is_checked_as_openai_does(body: dict[str, Any], param: str) -> None:
    assert refusal(**body).param == param


def test_the_router_gets_the_inputs_the_size_and_a_hashed_end_user() -> None:
    req, inputs = parse(input=["a", "b"], dimensions=256, user="alice@example.com")
    embed = to_embed_request(req, inputs, "req_1", "acct_1", "text-embedding-3-small")
    assert (embed.request_id, embed.account_id, embed.model, embed.dimensions) == (
        "req_1", "acct_1", "text-embedding-3-small", 256)
    assert [i.text for i in embed.inputs] == ["a", "b"]
    assert embed.end_user == end_user_id("acct_1", "alice@example.com") and "alice" not in embed.end_user
    assert to_embed_request(*parse(input="a"), "r", "acct_1", "m").dimensions == 0  # the model's own size


def test_the_reservation_bounds_every_input_and_no_output() -> None:
    req, inputs = parse(input=["héllo", "x"])
    reservation = reserve_for_embedding(to_embed_request(req, inputs, "r", "a", "m"), None)
    assert reservation.input_tokens == 6 + 1 + 2 * 8  # bytes, plus a model's markers per input
    assert reservation.output_tokens == 0 and reservation.cost_micros == 0
    tokens = reserve_for_embedding(to_embed_request(*parse(input=[[1, 2, 3]]), "r", "a", "m"), None)
    assert tokens.input_tokens == 3 + 8


VECTORS = [np.array([0.1, -0.25, 3.0e-7], "<f4"), np.array([1.0, 0.5, -2.0], "<f4")]


def _reply() -> router_pb2.EmbedResponse:
    return router_pb2.EmbedResponse(
        embeddings=[v.tobytes() for v in VECTORS], usage=router_pb2.Usage(input_tokens=9),
        deployment_id="d", provider="openai", model_served="m",
    )


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_both_encodings_carry_the_same_float32_vectors(encoding: str) -> None:
    body = build_embeddings("emb-alias", _reply(), encoding)
    assert body["object"] == "list" and body["model"] == "emb-alias"
    assert body["usage"] == {"prompt_tokens": 9, "total_tokens": 9}
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1)]
    if encoding == "float":  # the SDK's own type (it decodes base64 itself before validating)
        CreateEmbeddingResponse.model_validate(body)
    for item, vector in zip(body["data"], VECTORS, strict=True):
        value = item["embedding"]
        got = (np.frombuffer(base64.b64decode(value), "<f4") if isinstance(value, str)
               else np.array(value, "<f4"))
        assert got.tobytes() == vector.tobytes()  # exact, not close
    if encoding == "float":  # the numbers are the float32 values themselves, not rounded decimals
        assert body["data"][0]["embedding"][0] == struct.unpack("<f", struct.pack("<f", 0.1))[0]


def _model(*capabilities: str) -> ModelEntry:
    return ModelEntry(id="m", display_name="m", context_length=8, max_output_tokens=1, capabilities=capabilities)


def test_only_an_embedding_model_embeds_and_only_others_generate() -> None:
    check_embeds(_model("embeddings"), "m")
    with pytest.raises(InvalidRequest, match="does not serve embeddings") as refused:
        check_embeds(_model("chat", "streaming"), "gpt")
    assert refused.value.param == "model"
    with pytest.raises(InvalidRequest, match="is an embedding model"):
        check_generates(_model("embeddings"), "emb")
    check_generates(_model(), "m")  # no capabilities listed: generates as before
    check_generates(_model("chat", "embeddings"), "m")
