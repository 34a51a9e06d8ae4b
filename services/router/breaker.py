"""Per-deployment circuit breaker: stop sending traffic to a backend that keeps failing, probe it
again after a cool-down, and close only when a probe succeeds.

    CLOSED ──N consecutive failures──▶ OPEN ──cool-down elapsed──▶ HALF_OPEN (one probe at a time)
      ▲                                  ▲                              │
      └────────── probe succeeds ────────┼──────────────────────────────┘
                                         └──────── probe fails ─────────┘

Only failures that say something about the backend count (5xx, overload, timeouts, connection
errors, upstream rate limits); a client's bad request does not. Clock injected for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum

from prometheus_client import Gauge

BREAKER_STATE = Gauge(
    "tollgate_router_breaker_open", "1 when the deployment's breaker is open", ["deployment"]
)


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        cooldown_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown_seconds <= 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_seconds > 0")
        self.name = name
        self._threshold = failure_threshold
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state = BreakerState.CLOSED
        self._probe_in_flight = False
        self._gauge = BREAKER_STATE.labels(name)  # bound once: every success passes through _set
        self._gauge.set(0)

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._cooldown:
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        return self._state

    def allow(self) -> bool:
        """May a request be sent now? In HALF_OPEN only one probe is let through at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def release(self) -> None:
        """An attempt ended without a verdict (the client went away): free the probe slot, or a
        cancelled probe would keep the breaker half-open and refusing forever."""
        self._probe_in_flight = False

    def record_success(self) -> None:
        self._failures = 0
        self._probe_in_flight = False
        self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._probe_in_flight = False
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._failures >= self._threshold:
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._failures = 0
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            self._gauge.set(1 if state is BreakerState.OPEN else 0)
