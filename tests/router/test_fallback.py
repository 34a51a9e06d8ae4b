"""The fallback rules on scripted backends (the Backend protocol); the same rules are exercised
against the real replaying upstream in the provider tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator

import pytest

from services.common.errors import (
    InvalidRequest,
    Overloaded,
    RouterBusy,
    TollgateError,
    UnsupportedByBackend,
    UpstreamError,
    UpstreamTimeout,
)
from services.router.backends import GenerationRequest, Outcome, Sampling
from services.router.breaker import BreakerState, CircuitBreaker
from services.router.fallback import Deployment, Served, generate_with_fallback


class Scripted:
    """Fails before the first delta, or after ``fail_after`` deltas, or answers."""

    def __init__(self, name: str, error: TollgateError | None = None, fail_after: int | None = None) -> None:
        self.name = name
        self.error = error
        self.fail_after = fail_after
        self.calls = 0
        self.closed = 0

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def generate(self, request: GenerationRequest, outcome: Outcome) -> AsyncGenerator[list[str], None]:
        self.calls += 1
        try:
            if self.error is not None and self.fail_after is None:
                raise self.error
            for i in range(3):
                if self.fail_after is not None and i == self.fail_after:
                    assert self.error is not None
                    raise self.error
                outcome.output_tokens += 1
                yield [f"{self.name}{i} "]
            outcome.input_tokens = 7
        finally:
            self.closed += 1


def chain(*backends: Scripted) -> list[Deployment]:
    return [Deployment(b.name, "test", f"{b.name}-model", b) for b in backends]


REQUEST = GenerationRequest("req_1", "alias", Sampling(max_tokens=8), prompt="hi")


async def run(
    deployments: list[Deployment], breakers: dict[str, CircuitBreaker] | None = None,
    in_flight: Counter[str] | None = None,
) -> tuple[str, Served]:
    served = Served(Outcome())
    stream = generate_with_fallback(deployments, REQUEST, breakers or {}, served, in_flight)
    text = "".join([p async for batch in stream for p in batch])
    return text, served


@pytest.mark.parametrize(
    "error", [UpstreamError("500"), Overloaded("busy"), UpstreamTimeout("slow")], ids=["5xx", "overloaded", "timeout"]
)
async def test_falls_back_before_the_first_byte(error: TollgateError) -> None:
    a, b = Scripted("a", error), Scripted("b")
    text, served = await run(chain(a, b))
    assert text == "b0 b1 b2 "
    assert (served.deployment_id, served.attempts) == ("b", 2)
    assert (served.outcome.input_tokens, served.outcome.output_tokens) == (7, 3)  # only b's usage


async def test_never_falls_back_after_the_first_byte() -> None:
    a, b = Scripted("a", UpstreamError("dropped"), fail_after=1), Scripted("b")
    received: list[str] = []
    served = Served(Outcome())
    with pytest.raises(UpstreamError):
        async for delta in generate_with_fallback(chain(a, b), REQUEST, {}, served):
            received.extend(delta)
    assert received == ["a0 "]
    assert b.calls == 0
    assert served.deployment_id == "a" and served.outcome.output_tokens == 1  # billed for what was generated


async def test_client_errors_are_not_retried() -> None:
    a, b = Scripted("a", InvalidRequest("bad")), Scripted("b")
    with pytest.raises(InvalidRequest):
        await run(chain(a, b))
    assert b.calls == 0


async def test_all_deployments_failing_raises_the_last_error() -> None:
    with pytest.raises(UpstreamTimeout):
        await run(chain(Scripted("a", UpstreamError("x")), Scripted("b", UpstreamTimeout("y"))))


async def test_an_open_breaker_skips_its_deployment() -> None:
    a, b = Scripted("a"), Scripted("b")
    breakers = {"a": CircuitBreaker("a", failure_threshold=1, cooldown_seconds=60)}
    breakers["a"].record_failure()
    text, served = await run(chain(a, b), breakers)
    assert a.calls == 0 and text.startswith("b0") and served.attempts == 1


async def test_failures_open_the_breaker_and_successes_keep_it_closed() -> None:
    flaky = Scripted("a", UpstreamError("500"))
    breakers: dict[str, CircuitBreaker] = {"a": CircuitBreaker("a", failure_threshold=2, cooldown_seconds=60)}
    for _ in range(2):
        await run(chain(flaky, Scripted("b")), breakers)
    assert breakers["a"].state is BreakerState.OPEN
    await run(chain(flaky, Scripted("b")), breakers)
    assert flaky.calls == 2  # the third request never reached it


async def test_the_routers_own_overload_moves_on_without_a_breaker_verdict() -> None:
    """No free provider connection in the router is not the deployment's fault: the next deployment
    is asked, and the deployment's breaker stays as it was however often it happens."""
    busy = Scripted("a", RouterBusy("no free connection", retry_after=1.0))
    breakers: dict[str, CircuitBreaker] = {"a": CircuitBreaker("a", failure_threshold=1, cooldown_seconds=60)}
    for _ in range(3):
        _, served = await run(chain(busy, Scripted("b")), breakers)
        assert served.deployment_id == "b"
    assert breakers["a"].state is BreakerState.CLOSED and busy.calls == 3
    with pytest.raises(RouterBusy):  # nowhere else to go: the client hears the overload
        await run(chain(busy), breakers)


async def test_no_healthy_deployment_is_an_overload_error() -> None:
    breakers = {"a": CircuitBreaker("a", failure_threshold=1, cooldown_seconds=60)}
    breakers["a"].record_failure()
    with pytest.raises(Overloaded):
        await run(chain(Scripted("a")), breakers)


async def test_closing_the_client_stream_closes_the_backend_stream() -> None:
    a = Scripted("a")
    served = Served(Outcome())
    stream = generate_with_fallback(chain(a), REQUEST, {}, served)
    assert await anext(stream) == ["a0 "]
    await stream.aclose()
    assert a.closed == 1


async def test_attempts_count_as_in_flight_while_they_run_and_not_after() -> None:
    """Routing bounds affinity by these counts: one that leaked would starve a deployment for good."""
    in_flight: Counter[str] = Counter()
    served = Served(Outcome())
    failing, answering = Scripted("a", UpstreamError("500")), Scripted("b")
    stream = generate_with_fallback(chain(failing, answering), REQUEST, {}, served, in_flight)
    assert await anext(stream) == ["b0 "]
    assert in_flight == Counter({"a": 0, "b": 1})  # a's failed attempt is over, b's runs
    assert [p async for batch in stream for p in batch] == ["b1 ", "b2 "]
    assert in_flight == Counter({"a": 0, "b": 0})
    cut = generate_with_fallback(chain(Scripted("b")), REQUEST, {}, Served(Outcome()), in_flight)
    await anext(cut)
    assert in_flight["b"] == 1
    await cut.aclose()  # the client went away
    refused = Scripted("c", UnsupportedByBackend("no", param="top_k"))
    await run(chain(refused, Scripted("d")), in_flight=in_flight)
    assert set(in_flight.values()) == {0}


async def test_a_cancelled_half_open_probe_does_not_wedge_the_breaker() -> None:
    clock = [0.0]
    breaker = CircuitBreaker("a", failure_threshold=1, cooldown_seconds=1, clock=lambda: clock[0])
    breaker.record_failure()
    clock[0] = 2.0
    served = Served(Outcome())
    stream = generate_with_fallback(chain(Scripted("a")), REQUEST, {"a": breaker}, served)
    await anext(stream)
    await stream.aclose()  # client disconnected during the probe
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allow()


async def test_a_deployment_that_does_not_take_the_request_passes_it_on_uncounted() -> None:
    """A model served by Triton and a provider: response_format is refused by one and served by the
    other, whichever comes first; the refusal is not an attempt and no breaker hears of it."""
    refusing = Scripted("triton", UnsupportedByBackend("no response_format here", param="response_format"))
    breakers = {"triton": CircuitBreaker("triton", failure_threshold=1)}
    text, served = await run(chain(refusing, Scripted("provider")), breakers)
    assert text == "provider0 provider1 provider2 "
    assert (served.deployment_id, served.attempts) == ("provider", 1)
    assert breakers["triton"].state is BreakerState.CLOSED and breakers["triton"].allow()


async def test_when_no_deployment_takes_the_request_the_first_refusal_is_the_answer() -> None:
    first = UnsupportedByBackend("no tools here", param="tools")
    with pytest.raises(UnsupportedByBackend) as refused:
        await run(chain(Scripted("a", first), Scripted("b", UnsupportedByBackend("nor here", param="tools"))))
    assert refused.value is first


async def test_a_refusal_beside_a_failure_is_the_failure() -> None:
    """The deployment that takes the request is down: retrying later can work, dropping the
    parameter is not what the client needs to do."""
    with pytest.raises(UpstreamError):
        await run(chain(Scripted("a", UnsupportedByBackend("no", param="tools")), Scripted("b", UpstreamError("500"))))
