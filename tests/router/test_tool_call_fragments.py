"""What the router streams of a provider's tool-call fragments, and the whole calls it finishes with:
the fragments of a call, joined, are the call."""

from __future__ import annotations

from services.router.backends import Outcome, ToolCall, ToolCallDelta
from services.router.backends.tool_call_fragments import ToolCallAssembler


def test_calls_stream_in_order_with_our_indexes_and_finish_whole() -> None:
    outcome = Outcome()
    calls = ToolCallAssembler(outcome)
    calls.fragment(3, call_id="call_a", name="get", arguments="")  # a provider counting from 3
    calls.fragment(3, arguments='{"q":')
    calls.fragment(3, arguments='"x"}')
    calls.fragment(7, call_id="call_b", name="put", arguments="{}")
    assert outcome.take_tool_deltas() == [
        ToolCallDelta(0, "call_a", "get", ""), ToolCallDelta(0, "", "", '{"q":'), ToolCallDelta(0, "", "", '"x"}'),
        ToolCallDelta(1, "call_b", "put", "{}"),
    ]
    assert calls.calls() == [ToolCall("call_a", "get", '{"q":"x"}'), ToolCall("call_b", "put", "{}")]
    assert outcome.take_tool_deltas() == []  # taken once


def test_a_call_without_an_id_gets_one_that_the_stream_and_the_finish_share() -> None:
    outcome = Outcome()
    calls = ToolCallAssembler(outcome)
    calls.fragment(0, name="get")
    calls.fragment(0, call_id="late-id", arguments="{}")  # too late: the client already has an id
    [first, _] = outcome.tool_deltas
    assert first.id.startswith("call_") and calls.calls()[0].id == first.id


def test_a_name_that_comes_late_is_streamed_once() -> None:
    outcome = Outcome()
    calls = ToolCallAssembler(outcome)
    calls.fragment(0, call_id="c", arguments="{")
    calls.fragment(0, name="get", arguments="}")
    calls.fragment(0, name="get")  # repeated by the server: nothing new
    assert outcome.tool_deltas == [ToolCallDelta(0, "c", "", "{"), ToolCallDelta(0, "", "get", "}")]
    assert calls.calls() == [ToolCall("c", "get", "{}")]


def test_a_provider_that_interleaves_calls_stops_the_stream_but_not_the_calls() -> None:
    """An older call growing after a newer one started could not be streamed to an Anthropic client
    (its block is closed): from then on the fragments wait for the Finish."""
    outcome = Outcome()
    calls = ToolCallAssembler(outcome)
    calls.fragment(0, call_id="a", name="f", arguments="{")
    calls.fragment(1, call_id="b", name="g", arguments="{")
    calls.fragment(0, arguments="}")
    calls.fragment(1, arguments="}")
    calls.fragment(2, call_id="c", name="h", arguments="{}")
    assert outcome.tool_deltas == [ToolCallDelta(0, "a", "f", "{"), ToolCallDelta(1, "b", "g", "{")]
    assert calls.calls() == [ToolCall("a", "f", "{}"), ToolCall("b", "g", "{}"), ToolCall("c", "h", "{}")]
