"""The usage event an edge makes from what it saw of a request (the status table of record.py)."""

from __future__ import annotations

from services.common.errors import UpstreamError
from services.edge.usage.record import ChoicesSettlement, RequestRecord, choices_event
from tollgate.router.v1 import router_pb2


def _record() -> RequestRecord:
    return RequestRecord(
        request_id="req_1", account_id="acct_1", key_id="key_1", api="openai.chat_completions",
        model_requested="smollm2", model_id="smollm2-135m-instruct", price_version="p1", streamed=True,
        edge_id="edge-1",
    )


def _delta(text: str, out: int, inp: int = 0, deployment: str = "") -> router_pb2.GenerateResponse:
    return router_pb2.GenerateResponse(delta=router_pb2.Delta(
        text=text, output_tokens=out, input_tokens=inp, deployment_id=deployment, provider="triton" if deployment else "",
    ))


def test_a_finished_request_is_ok_with_the_finish_usage() -> None:
    record = _record()
    record.observe(_delta("Hi", 1, 12, "dep-1"))
    record.observe(router_pb2.GenerateResponse(finish=router_pb2.Finish(
        finish_reason="stop", deployment_id="dep-1", provider="triton", attempts=2,
        usage=router_pb2.Usage(input_tokens=12, cached_input_tokens=3, output_tokens=7, reasoning_tokens=2),
    )))
    event = record.to_event()
    assert event.status == "ok" and event.error_type is None
    assert (event.tokens.input, event.tokens.cached_input, event.tokens.output, event.tokens.reasoning) == (12, 3, 7, 2)
    assert event.deployment_id == "dep-1" and event.attempts == 2 and event.ttft_ms is not None
    assert event.price_version == "p1" and event.model_served == "smollm2-135m-instruct"


def test_an_error_before_output_is_recorded_with_zero_tokens() -> None:
    record = _record()
    record.fail(UpstreamError("boom", code="upstream_error"))
    event = record.to_event()
    assert event.status == "error" and event.error_type == "upstream_error"
    assert event.tokens.input == event.tokens.output == 0 and event.ttft_ms is None and event.provider == "none"


def test_a_client_that_leaves_mid_stream_is_billed_the_running_count() -> None:
    record = _record()
    for i in range(1, 6):
        record.observe(_delta("x", i, 40, "dep-1" if i == 1 else ""))
    event = record.to_event()
    assert event.status == "client_disconnected"
    assert (event.tokens.input, event.tokens.output) == (40, 5)
    assert event.deployment_id == "dep-1" and event.provider == "triton"


def test_a_stream_that_breaks_after_output_is_an_error_with_its_running_count() -> None:
    record = _record()
    record.observe(_delta("x", 3, 10, "dep-1"))
    record.fail(UpstreamError("cut", code="upstream_error"))
    event = record.to_event()
    assert event.status == "error" and event.tokens.output == 3


def test_a_finish_that_reports_an_error_keeps_its_usage() -> None:
    record = _record()
    record.observe(_delta("x", 2, 10, "dep-1"))
    record.observe(router_pb2.GenerateResponse(finish=router_pb2.Finish(
        finish_reason="error", error_code="upstream_error", usage=router_pb2.Usage(input_tokens=10, output_tokens=2),
    )))
    event = record.to_event()
    assert event.status == "error" and event.error_type == "upstream_error" and event.tokens.output == 2


def _account(
    inp: int, out: int, deployment: str = "dep-an", cached: int = 0, provider: str = "anthropic"
) -> router_pb2.Finish:
    """The router's account of a call the edge stopped."""
    return router_pb2.Finish(
        finish_reason="cancelled", deployment_id=deployment, provider=provider, attempts=1,
        usage=router_pb2.Usage(input_tokens=inp, cached_input_tokens=cached, output_tokens=out),
    )


def test_a_non_stream_request_the_client_left_is_billed_the_routers_account() -> None:
    record = _record()
    record.streamed = False
    record.observe_stopped(_account(44, 12, cached=8))
    event = record.to_event()
    assert event.status == "client_disconnected" and event.ttft_ms is None  # the client got nothing
    assert (event.tokens.input, event.tokens.cached_input, event.tokens.output) == (44, 8, 12)
    assert (event.deployment_id, event.provider) == ("dep-an", "anthropic")
    assert record.used_anything and record.settled_usage() == _account(44, 12, cached=8).usage


def test_the_routers_account_of_a_cut_stream_beats_the_last_delta_the_edge_read() -> None:
    record = _record()
    record.observe(_delta("x", 5, 40, "dep-1"))
    record.observe_stopped(_account(40, 9, "dep-1", provider="triton"))  # 4 more made before the stop
    event = record.to_event()
    assert (event.status, event.tokens.input, event.tokens.output) == ("client_disconnected", 40, 9)
    assert event.deployment_id == "dep-1" and event.provider == "triton"


def test_an_account_without_the_prompt_leaves_the_budget_on_the_reserved_prompt() -> None:
    """An OpenAI stream stopped before its final chunk: output is known, the prompt is not. Billing has
    only what the provider said; the budget keeps its worst case for the prompt (Ticket.settlement)."""
    record = _record()
    record.observe_stopped(_account(0, 7, "dep-oa", provider="openai"))
    assert record.settled_usage() is None  # not a full usage: the ticket settles on the running count
    running = record.running_usage()
    assert running is not None and (running.input_tokens, running.output_tokens) == (0, 7)
    assert record.used_anything
    record.observe_stopped(_account(0, 0, "dep-oa", provider="openai"))
    assert not record.used_anything  # nothing done: the whole reservation goes back


def _finished(inp: int, out: int, reason: str = "stop") -> RequestRecord:
    record = _record()
    record.observe(_delta("x", 1, inp, "dep-1"))
    record.observe(router_pb2.GenerateResponse(finish=router_pb2.Finish(
        finish_reason=reason, deployment_id="dep-1", provider="triton", attempts=1,
        usage=router_pb2.Usage(input_tokens=inp, cached_input_tokens=2, output_tokens=out),
    )))
    return record


def test_choices_settle_the_sum_of_their_usages_when_every_one_is_known() -> None:
    settlement = ChoicesSettlement.of([_finished(10, 3), _finished(10, 5)])
    assert settlement.output_started and settlement.running is None and settlement.usage is not None
    usage = settlement.usage
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (20, 4, 8)


def test_a_choice_cut_short_without_its_prompt_leaves_the_input_to_the_reserved_bound() -> None:
    cut = _record()
    cut.observe(_delta("x", 4, 0, "dep-1"))  # an OpenAI-compatible provider says its prompt only at the end
    settlement = ChoicesSettlement.of([_finished(10, 3), cut, _record()])  # the third never started
    assert settlement.usage is None and settlement.running is not None
    assert (settlement.running.input_tokens, settlement.running.output_tokens) == (0, 7)
    counted = _record()
    counted.observe(_delta("x", 4, 9, "dep-1"))  # Triton says its prompt with the first delta
    running = ChoicesSettlement.of([_finished(10, 3), counted]).running
    assert running is not None and (running.input_tokens, running.output_tokens) == (21, 7)  # 10 + 2 cached + 9


def test_no_choice_started_returns_the_whole_reservation() -> None:
    settlement = ChoicesSettlement.of([_record(), _record()])
    assert not settlement.output_started and settlement.usage is None


def test_one_event_adds_up_every_choice_with_the_worst_status() -> None:
    cut = _record()
    cut.observe(_delta("x", 4, 0, "dep-1"))
    event = choices_event([_finished(10, 3), cut])
    assert event.status == "client_disconnected"
    assert (event.tokens.input, event.tokens.cached_input, event.tokens.output) == (10, 2, 7)
    failed = choices_event([_finished(10, 3), _finished(10, 0, "error")])
    assert failed.status == "error" and failed.error_type == "upstream_error"
    ok = choices_event([_finished(10, 3), _finished(12, 4)])
    assert ok.status == "ok" and (ok.tokens.input, ok.tokens.output) == (22, 7) and ok.request_id == "req_1"
