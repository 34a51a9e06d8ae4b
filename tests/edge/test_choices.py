"""Answers of several choices (``choices.py``): one router request per choice, seeded apart; every
choice's worst case reserved; one SSE stream of every choice's chunks, each with its index, that the
official SDK rebuilds, with one usage chunk and one ``[DONE]``; a choice that fails ends the stream
with the error event and stops the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import openai
import orjson
import pytest

from services.common.errors import UpstreamError
from services.edge.admission.reservation import reserve_for, reserve_for_choices
from services.edge.admission.ticket import Ticket
from services.edge.admitted import Admitted
from services.edge.choices import ChoiceStream, choice_encoders, choice_events
from services.edge.convert import (
    OpenAIChatStream,
    OpenAICompletionStream,
    parse_chat_request,
    parse_completion_request,
    to_generate_requests,
)
from services.edge.usage.record import RequestRecord
from tests.edge.test_streams import events, openai_client, serving
from tollgate.router.v1 import router_pb2 as pb

ASK = [{"role": "user", "content": "hi"}]


def _chat(**fields: Any) -> bytes:
    return orjson.dumps({"model": "m", "messages": ASK, **fields})


def test_each_choice_is_its_own_request_seeded_apart() -> None:
    requests = to_generate_requests(parse_chat_request(_chat(n=3, seed=-2)), "req_1", "acct", "m-id",
                                    default_max_tokens=16)
    assert [r.sampling.seed for r in requests] == [2**64 - 2, 2**64 - 1, 0]  # int64 -2 as uint64, wrapping
    assert all(r.chat == requests[0].chat and r.request_id == "req_1" for r in requests)
    unseeded = to_generate_requests(parse_chat_request(_chat(n=2)), "req_1", "acct", "m-id", default_max_tokens=16)
    assert [r.sampling.HasField("seed") for r in unseeded] == [False, False]
    assert len(to_generate_requests(parse_chat_request(_chat()), "req_1", "acct", "m-id", default_max_tokens=16)) == 1


def test_a_batch_of_prompts_is_n_choices_per_prompt_in_order() -> None:
    body = orjson.dumps({"model": "m", "prompt": [[1, 2], [3]], "n": 2, "seed": 7, "echo": True, "logprobs": 1})
    requests = to_generate_requests(parse_completion_request(body), "req_1", "acct", "m-id", default_max_tokens=16)
    assert [list(r.prompt_tokens.ids) for r in requests] == [[1, 2], [1, 2], [3], [3]]
    assert [r.sampling.seed for r in requests] == [7, 8, 7, 8]
    assert {r.provider_options_json for r in requests} == {'{"echo":true,"logprobs":1}'}
    texts = to_generate_requests(parse_completion_request(orjson.dumps({"model": "m", "prompt": ["a", "b"]})),
                                 "req_1", "acct", "m-id", default_max_tokens=16)
    assert [r.prompt for r in texts] == ["a", "b"]


def test_every_choice_reserves_its_own_worst_case() -> None:
    requests = to_generate_requests(parse_completion_request(orjson.dumps(
        {"model": "m", "prompt": ["short", "a much longer prompt"], "max_tokens": 5})), "r", "a", "m", default_max_tokens=9)
    whole = reserve_for_choices(requests, None)
    assert whole.input_tokens == sum(reserve_for(r, None).input_tokens for r in requests) > 0
    assert whole.output_tokens == 10


def _finish(output: int, reason: str = "stop") -> pb.GenerateResponse:
    return pb.GenerateResponse(finish=pb.Finish(
        finish_reason=reason, usage=pb.Usage(input_tokens=4, output_tokens=output),
        error_code="overloaded" if reason == "error" else "", error_message="Backend overloaded" if reason == "error" else "",
    ))


def _text(text: str, output: int) -> pb.GenerateResponse:
    return pb.GenerateResponse(delta=pb.Delta(text=text, output_tokens=output, input_tokens=4))


class _Call:
    """A router call that gives its messages, each after ``gap`` seconds; ``stop`` is recorded."""

    def __init__(self, messages: list[pb.GenerateResponse], gap: float = 0.0) -> None:
        self.messages, self.gap = messages, gap
        self.stopped = False

    async def first(self) -> pb.GenerateResponse:
        await asyncio.sleep(self.gap)
        return self.messages[0]

    async def rest(self) -> AsyncIterator[pb.GenerateResponse]:
        for message in self.messages[1:]:
            await asyncio.sleep(self.gap)
            yield message

    def cancel(self) -> None:
        self.stopped = True

    async def stop(self) -> pb.Finish | None:
        self.stopped = True
        return pb.Finish(finish_reason="cancelled", usage=pb.Usage(input_tokens=4, output_tokens=1))


def _admitted(choices: int) -> Admitted:
    record = RequestRecord(request_id="req_1", account_id="a", key_id="k", api="openai.chat_completions",
                           model_requested="m", model_id="m", price_version=None, streamed=True, edge_id="e")
    ticket = Ticket(key_id="k", reservation=reserve_for(pb.GenerateRequest(), None), price=None)
    return Admitted(ticket, record, cast(Any, None), cast(Any, None), choices)


async def _serve(calls: list[_Call], admitted: Admitted, include_usage: bool = True) -> bytes:
    stream = ChoiceStream(cast(Any, calls), admitted, None)
    assert await stream.first()
    encoders = choice_encoders(OpenAIChatStream("req_1", "m", include_usage=include_usage), len(calls))
    return b"".join([chunk async for chunk in choice_events(stream, encoders, admitted, False)])


async def test_a_stream_of_two_choices_is_what_the_sdk_rebuilds() -> None:
    admitted = _admitted(2)
    body = await _serve([_Call([_text("Hel", 1), _text("lo", 2), _finish(2)], 0.002),
                         _Call([_text("Bye", 1), _finish(1)], 0.001)], admitted)
    chunks = [orjson.loads(data) for _, data in events(body) if data != "[DONE]"]
    assert body.endswith(b"data: [DONE]\n\n") and body.count(b"[DONE]") == 1
    assert [c["usage"] for c in chunks if c["usage"]] == [
        {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11,
         "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}]
    roles = [c["choices"][0]["index"] for c in chunks if c["choices"] and "role" in c["choices"][0]["delta"]]
    assert sorted(roles) == [0, 1]  # each choice opens with its own role chunk
    with serving(body) as http, openai_client(http).chat.completions.stream(
        model="m", messages=cast(Any, ASK), n=2, stream_options={"include_usage": True},
    ) as sdk_stream:
        final = sdk_stream.get_final_completion()
    assert [(c.index, c.message.content, c.finish_reason) for c in final.choices] == [
        (0, "Hello", "stop"), (1, "Bye", "stop")]
    assert [r.finish is not None for r in admitted.records] == [True, True]


async def test_a_completion_stream_of_two_choices_carries_each_index() -> None:
    stream = ChoiceStream(cast(Any, [_Call([_text("a", 1), _finish(1)]), _Call([_text("b", 1), _finish(1)])]),
                          _admitted(2), None)
    assert await stream.first()
    encoders = choice_encoders(OpenAICompletionStream("req_1", "m", include_usage=False), 2)
    body = b"".join([chunk async for chunk in choice_events(stream, encoders, _admitted(2), False)])
    chunks = [orjson.loads(data) for _, data in events(body) if data != "[DONE]"]
    texts = {(c["choices"][0]["index"], c["choices"][0]["text"]) for c in chunks if c["choices"][0]["text"]}
    assert texts == {(0, "a"), (1, "b")}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["stop", "stop"]
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1


async def test_a_choice_that_fails_after_the_first_byte_ends_the_stream_with_an_error() -> None:
    admitted = _admitted(2)
    slow = _Call([_text("still going", 1), _text(" on", 2), _finish(2)], 0.05)
    body = await _serve([_Call([_text("x", 1), _finish(1, "error")], 0.0), slow], admitted)
    assert b"[DONE]" not in body
    last = orjson.loads(events(body)[-1][1])
    assert last["error"]["code"] == "overloaded"
    assert slow.stopped  # the other choice's generation was stopped
    assert admitted.records[1].stopped is not None  # and its record has the router's account of it
    with serving(body) as http, pytest.raises(openai.APIError, match="Backend overloaded"):
        for _ in openai_client(http).chat.completions.create(model="m", messages=cast(Any, ASK), n=2, stream=True):
            pass


async def test_a_choice_that_ends_without_a_finish_is_an_error_event() -> None:
    admitted = _admitted(2)
    body = await _serve([_Call([_text("x", 1), _finish(1)]), _Call([_text("y", 1)])], admitted)
    assert b"[DONE]" not in body and "ended without a final message" in events(body)[-1][1]
    assert isinstance(admitted.record.error, UpstreamError)


async def test_a_choice_that_fails_before_the_first_byte_raises_and_stops_the_others() -> None:
    admitted = _admitted(2)
    fine = _Call([_text("x", 1), _finish(1)], 0.05)

    class _Broken(_Call):
        async def first(self) -> pb.GenerateResponse:
            raise UpstreamError("no backend", code="upstream_error")

    stream = ChoiceStream(cast(Any, [fine, _Broken([])]), admitted, None)
    with pytest.raises(UpstreamError, match="no backend"):
        await stream.first()
    await stream.stop()
    assert fine.stopped


async def test_quiet_choices_start_the_stream_with_keep_alives() -> None:
    admitted = _admitted(2)
    stream = ChoiceStream(cast(Any, [_Call([_text("a", 1), _finish(1)], 0.15), _Call([_finish(0)], 0.0)]),
                          admitted, 0.05)
    quiet_start = not await stream.first()
    assert quiet_start
    encoders = choice_encoders(OpenAIChatStream("req_1", "m", include_usage=False), 2)
    body = b"".join([chunk async for chunk in choice_events(stream, encoders, admitted, quiet_start)])
    assert body.startswith(b": keep-alive") and body.endswith(b"data: [DONE]\n\n")


async def test_a_cancel_that_comes_with_a_chunk_is_never_swallowed() -> None:
    """The client leaving in the same loop iteration as a chunk arriving still cancels the stream
    (``asyncio.wait_for`` before 3.12 would return the chunk and drop the cancellation, and the
    generations would run on for a client long gone)."""
    stream = ChoiceStream(cast(Any, [_Call([_text("a", 1), _finish(1)], 30.0)]), _admitted(1), 60.0)
    reading = asyncio.ensure_future(stream._next())
    await asyncio.sleep(0.01)
    stream._put((0, _text("b", 1)))  # the chunk arrives ...
    reading.cancel()  # ... as the client leaves
    with pytest.raises(asyncio.CancelledError):
        await reading
    await stream.stop()
