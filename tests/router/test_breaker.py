from __future__ import annotations

from prometheus_client import REGISTRY

from services.router.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_refuses_traffic() -> None:
    clock = Clock()
    breaker = CircuitBreaker("dep", failure_threshold=3, cooldown_seconds=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker("dep", failure_threshold=2, cooldown_seconds=10, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_opens_after_cooldown_with_a_single_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker("dep", failure_threshold=1, cooldown_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()          # the probe
    assert not breaker.allow()      # nobody else while it is in flight


def test_failed_probe_reopens_and_successful_probe_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker("dep", failure_threshold=1, cooldown_seconds=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()


def test_a_probe_without_verdict_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker("dep", failure_threshold=1, cooldown_seconds=1, clock=clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release()  # the client cancelled the probe request
    assert breaker.allow()


def test_the_open_gauge_follows_the_state() -> None:
    def gauge() -> float | None:
        return REGISTRY.get_sample_value("tollgate_router_breaker_open", {"deployment": "dep-gauge"})

    clock = Clock()
    breaker = CircuitBreaker("dep-gauge", failure_threshold=1, cooldown_seconds=5, clock=clock)
    assert gauge() == 0  # exported from the start, not from the first verdict
    breaker.record_failure()
    assert gauge() == 1
    clock.now += 5
    assert breaker.allow()  # half-open: still counted as open until the probe succeeds
    assert gauge() == 1
    breaker.record_success()
    assert gauge() == 0
    breaker.record_success()
    assert gauge() == 0
