"""Admission against Redis: one EVALSHA per request before dispatch, one after it ends (the calls
ready together share one pipelined round trip: ``script_batch``).

Every limit lives in Redis, shared by all edges (never per process): requests and tokens per minute
as 60-second sliding windows of one-second buckets, concurrency as leases with a TTL, the budget as a
counter per fixed window aligned to the Unix epoch (keyed by the window's start, so nothing ever has
to reset it). The admit script checks and reserves all of them atomically, so N edges and any
number of concurrent requests can never pass the same remaining capacity twice.

Leases are renewed by a background loop while their request runs and released from the response's
``finally``; an edge that dies stops renewing, and its leases expire after ``lease_ttl``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as redis
import structlog
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from services.common import redis_keys
from services.common.errors import DependencyUnavailable, InsufficientQuota, Overloaded, RateLimited
from services.common.events.catalog import PriceEntry
from services.common.events.keys import KeyEventV1
from services.common.money import format_micros
from services.edge.admission.headers import Dialect, duration, rate_limit_headers
from services.edge.admission.reservation import Reservation
from services.edge.admission.script_batch import ScriptBatch, run_pipelined
from services.edge.admission.ticket import Ticket

log = structlog.get_logger(__name__)
SCRIPTS = Path(__file__).parent
UNLIMITED = -1
Policy = Literal["allow", "refuse"]

DECISIONS = Counter("tollgate_admission_total", "Admission decisions", ["outcome"])
ADMIT_SECONDS = Histogram(
    "tollgate_admission_seconds", "Time of the admission round trip to Redis",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5),
)
REASONS = {1: "requests", 2: "tokens", 3: "concurrency", 4: "budget", 5: "balance"}
SETTLE_BATCH = 256  # settlements per pipelined round trip


@dataclass(frozen=True)
class OutagePolicy:
    """What to do when Redis cannot be reached: for rate limits (RPM, TPM, concurrency) and for
    money (budgets). The default serves rate-limited keys and refuses keys with a budget."""

    rate_limits: Policy = "allow"
    budgets: Policy = "refuse"


def _limit(value: int | None) -> int:
    return UNLIMITED if value is None else value


def spends_money(key: KeyEventV1) -> bool:
    """A budget or a prepaid balance: what the outage policy for money covers."""
    return key.limits.budget_micros is not None or key.billing == "prepaid"


def needs_redis(key: KeyEventV1) -> bool:
    limits = key.limits
    counted = (limits.requests_per_minute, limits.tokens_per_minute, limits.max_concurrency)
    return spends_money(key) or any(v is not None for v in counted)


# The longest Retry-After the OpenAI and Anthropic SDKs wait for; past it they retry after their own
# backoff of at most 8 s, which a refusal that lasts longer (a spent budget, a request over the TPM
# limit, an empty prepaid balance) would refuse again: those refusals say x-should-retry: false.
SDK_RETRY_AFTER_MAX_SECONDS = 60


class Admission:
    def __init__(
        self, client: redis.Redis, prefix: str, lease_ttl_seconds: float, policy: OutagePolicy,
        max_request_seconds: float, *, checks_at_once: int = 62, queue_seconds: float = 5.0,
    ) -> None:
        """``checks_at_once`` admission scripts run at once (fewer than the pool's connections, so
        settlements and lease renewals always find one); a request waits up to ``queue_seconds`` for
        its turn and is then refused as overloaded.

        Why a gate of our own before the pool's: the pool says "no connection available" with the
        same ConnectionError as a Redis that is down, and the outage policy serves rate-limited keys
        without checking them when Redis is down. A burst on one edge would have been admitted past
        its rate limits; a busy edge is not a Redis outage."""
        self._redis = client
        self._slots = asyncio.Semaphore(max(1, checks_at_once))
        self._queue_seconds = queue_seconds
        self._prefix = prefix
        self._lease_ttl_ms = int(lease_ttl_seconds * 1000)
        self._policy = policy
        self._max_request_seconds = max_request_seconds
        self._admit = client.register_script((SCRIPTS / "admit.lua").read_text())
        self._settle = client.register_script((SCRIPTS / "settle.lua").read_text())
        self._renew = client.register_script((SCRIPTS / "renew.lua").read_text())
        self._admits = ScriptBatch(client, self._admit, "admit")
        self._leases: dict[str, Ticket] = {}
        self._unsettled: list[tuple[Ticket, int, int]] = []  # (ticket, token delta, cost delta)
        self._settler: asyncio.Task[None] | None = None

    def _keys(self, account_id: str, key_id: str) -> tuple[str, str, str, str, str, str]:
        """The key's counters and its account's wallet: one hash tag (the account), one Cluster slot."""
        base = redis_keys.key_base(self._prefix, account_id, key_id)
        return (f"{base}:rpm", f"{base}:tpm", f"{base}:leases", f"{base}:budget",
                redis_keys.wallet(self._prefix, account_id), redis_keys.holds(self._prefix, account_id))

    async def admit(
        self, key: KeyEventV1, reservation: Reservation, price: PriceEntry | None,
        request_id: str | None = None, dialect: Dialect = "openai",
    ) -> Ticket:
        """Reserve ``reservation`` against every limit of ``key`` (and its account's prepaid balance,
        held under ``request_id`` until billing charges the request), or raise the refusal (429/503).
        Its rate-limit headers, on the ticket or the refusal, are in the client's API's ``dialect``."""
        limits = key.limits
        ticket = Ticket(key.key_id, reservation, price, account_id=key.account_id)
        if not needs_redis(key):
            ticket.metered = False
            return ticket
        lease_id = secrets.token_hex(8) if limits.max_concurrency is not None else ""
        window = limits.budget_window_seconds or 1
        prepaid = key.billing == "prepaid"
        hold_id = request_id or secrets.token_hex(12)
        started = time.perf_counter()
        await self._turn()
        try:
            reply: list[int] = await self._admits.call(
                self._keys(key.account_id, key.key_id),
                [
                    _limit(limits.requests_per_minute), _limit(limits.tokens_per_minute),
                    _limit(limits.max_concurrency), _limit(limits.budget_micros), window,
                    reservation.tokens, reservation.cost_micros, lease_id or "-", self._lease_ttl_ms,
                    1 if prepaid else 0, hold_id,
                ],
            )
        except RedisError as exc:
            return self._without_redis(ticket, key, exc)
        finally:
            self._slots.release()
            ADMIT_SECONDS.observe(time.perf_counter() - started)
        (admitted, reason, retry_ms, rpm_left, rpm_reset, tpm_left, tpm_reset, second, window_start,
         budget_left, available) = (int(v) for v in reply)
        headers = rate_limit_headers(
            limits.requests_per_minute, rpm_left, rpm_reset, limits.tokens_per_minute, tpm_left, tpm_reset,
            dialect,
        )
        if not admitted:
            DECISIONS.labels(REASONS.get(reason, "unknown")).inc()
            raise self._refusal(key, reason, retry_ms, reservation, max(budget_left, available), headers)
        DECISIONS.labels("admitted").inc()
        ticket.headers = headers
        ticket.bucket_second = second if limits.tokens_per_minute is not None else -1
        ticket.window_start = window_start
        if prepaid and reservation.cost_micros > 0:
            ticket.hold_id = hold_id
        if lease_id:
            ticket.lease_id = lease_id
            self._leases[lease_id] = ticket
        return ticket

    async def _turn(self) -> None:
        """A slot for one admission script: at once while one is free, else in turn, within
        ``queue_seconds``; past that the request is refused (503), never admitted unchecked."""
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without suspending
            return
        try:
            # not asyncio.wait_for: before Python 3.12 it swallows a cancellation (the client gone)
            # that comes as the slot frees, and would admit a request nobody waits for
            async with asyncio.timeout(self._queue_seconds):
                await self._slots.acquire()
        except TimeoutError:
            DECISIONS.labels("queue_full").inc()
            raise Overloaded(
                "This edge has more requests waiting for their limits to be checked than it can check "
                "in time; retry shortly.", retry_after=1.0,
            ) from None

    def _without_redis(self, ticket: Ticket, key: KeyEventV1, exc: RedisError) -> Ticket:
        money = spends_money(key)
        policy = self._policy.budgets if money else self._policy.rate_limits
        log.warning("admission_redis_unavailable", error=type(exc).__name__, policy=policy, budget=money)
        if policy == "refuse":
            DECISIONS.labels("redis_down_refused").inc()
            raise DependencyUnavailable(
                "Usage limits cannot be checked right now; please retry shortly.", retry_after=1.0
            ) from None
        DECISIONS.labels("redis_down_allowed").inc()
        ticket.metered = False
        return ticket

    @staticmethod
    def _refusal(
        key: KeyEventV1, reason: int, retry_ms: int, reservation: Reservation, money_left: int,
        headers: dict[str, str],
    ) -> RateLimited | InsufficientQuota:
        limits = key.limits
        retry = None if retry_ms < 0 else max(retry_ms, 1) / 1000
        wait = f" Please try again in {duration(retry_ms)}." if retry_ms >= 0 else ""
        exc: RateLimited | InsufficientQuota
        if reason == 1:
            exc = RateLimited(
                f"Rate limit reached for requests per minute (RPM) on key {key.prefix}...: "
                f"limit {limits.requests_per_minute}.{wait}", code="rate_limit_exceeded",
            )
        elif reason == 2:
            if retry_ms < 0:
                msg = (f"Request too large for the tokens-per-minute (TPM) limit of key {key.prefix}...: "
                       f"limit {limits.tokens_per_minute}, requested up to {reservation.tokens} "
                       f"(prompt bound + max_tokens). Lower max_tokens or the prompt size.")
            else:
                msg = (f"Rate limit reached for tokens per minute (TPM) on key {key.prefix}...: "
                       f"limit {limits.tokens_per_minute}, requested up to {reservation.tokens}.{wait}")
            exc = RateLimited(msg, code="rate_limit_exceeded")
        elif reason == 3:
            exc = RateLimited(
                f"Too many concurrent requests on key {key.prefix}...: limit {limits.max_concurrency}."
                f"{wait}", code="concurrency_limit_exceeded",
            )
        elif reason == 4:
            budget = format_micros(limits.budget_micros or 0)
            exc = InsufficientQuota(
                f"This key's budget of ${budget} per {duration((limits.budget_window_seconds or 0) * 1000)} "
                f"would be exceeded: ${format_micros(money_left)} left, this request may cost up to "
                f"${format_micros(reservation.cost_micros)}.{wait}",
            )
        else:
            available = format_micros(max(money_left, 0))
            exc = InsufficientQuota(
                f"This account's prepaid balance cannot cover this request: ${available} "
                f"available, this request may cost up to ${format_micros(reservation.cost_micros)}. "
                "Add credits to the account, or lower max_tokens.",
            )
        exc.retry_after = retry
        exc.headers = headers
        if retry is None or retry > SDK_RETRY_AFTER_MAX_SECONDS:
            exc.should_retry = False  # an SDK's own retries (within seconds) would all be refused too
        return exc

    def release(self, ticket: Ticket) -> None:
        """Settle ``ticket`` exactly once, off the request: safe from a ``finally`` that is being
        cancelled (a client disconnect), and never delaying the response."""
        if ticket.released:
            return
        ticket.released = True
        if ticket.lease_id:
            self._leases.pop(ticket.lease_id, None)
        if not ticket.metered:
            return
        token_delta, cost_delta = ticket.settlement()
        if not ticket.lease_id and token_delta == 0 and cost_delta == 0:  # a hold waits for billing
            return
        self._unsettled.append((ticket, token_delta, cost_delta))
        if self._settler is None or self._settler.done():
            self._settler = asyncio.get_running_loop().create_task(self._settle_unsettled())

    async def _settle_unsettled(self) -> None:
        """One task while settlements are waiting, one pipelined round trip per batch: whatever was
        released while a batch was in flight goes in the next. No timer, so nothing waits for one."""
        while self._unsettled:
            batch, self._unsettled = self._unsettled[:SETTLE_BATCH], self._unsettled[SETTLE_BATCH:]
            try:
                await self._settle_batch(batch)
            except RedisError as exc:
                # leases expire on their own; an unsettled reservation only errs on the safe side
                log.warning("admission_settle_failed", error=type(exc).__name__, settlements=len(batch))

    async def _settle_batch(self, batch: list[tuple[Ticket, int, int]]) -> None:
        calls = [self._settle_call(*settlement) for settlement in batch]
        results = await run_pipelined(self._redis, self._settle, calls)
        for (ticket, _, _), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                log.warning("admission_settle_failed", error=type(result).__name__, key_id=ticket.key_id)

    def _settle_call(
        self, ticket: Ticket, token_delta: int, cost_delta: int
    ) -> tuple[list[str], list[int | str]]:
        """settle.lua's keys and arguments for one ticket."""
        _, tpm, leases, budget, wallet, holds = self._keys(ticket.account_id, ticket.key_id)
        args: list[int | str] = [
            ticket.bucket_second, token_delta, ticket.lease_id, ticket.window_start, cost_delta,
            ticket.hold_id,
        ]
        return [tpm, leases, budget, wallet, holds], args

    async def renew_leases(self) -> int:
        """Extend every lease this edge holds, one script call per key, all in one pipeline."""
        horizon = time.monotonic() - self._max_request_seconds
        by_key: dict[tuple[str, str], list[str]] = defaultdict(list)
        for lease_id, ticket in list(self._leases.items()):
            if ticket.admitted_at < horizon:  # outlived any request: stop keeping it alive
                self._leases.pop(lease_id, None)
            else:
                by_key[(ticket.account_id, ticket.key_id)].append(lease_id)
        if not by_key:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for (account_id, key_id), lease_ids in by_key.items():
            leases = self._keys(account_id, key_id)[2]
            await self._renew(keys=[leases], args=[self._lease_ttl_ms, *lease_ids], client=pipe)
        results: list[Any] = await pipe.execute()
        return sum(int(r) for r in results)

    async def run_renewals(self, stop: asyncio.Event) -> None:
        interval = self._lease_ttl_ms / 3000
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass
            try:
                await self.renew_leases()
            except RedisError as exc:
                log.warning("admission_renew_failed", error=type(exc).__name__)

    async def drain(self) -> None:
        """Wait for settlements in flight (shutdown, tests)."""
        if self._settler is not None and not self._settler.done():
            await asyncio.wait({self._settler}, timeout=5)

    @property
    def leases_held(self) -> int:
        return len(self._leases)
