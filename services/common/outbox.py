"""The publisher loop of a transactional outbox: PostgreSQL rows committed but not yet on Kafka.

A service's changes commit their rows with a new ``state_version``; what is above ``published_version``
*is* the outbox, so nothing committed can be missed. Two paths drive the publishing: a management
request ``flush``-es right after its commit (so edges see the change within the promised 2 s), and
``run`` makes a pass every ``interval`` seconds to catch whatever is left (Kafka was down, the process
died between commit and publish, another process wrote). Both go through the one publisher task of a
process, so passes never overlap within it.

This module is only that loop, and ``publish_all`` for a batch's sends; what a pass claims, publishes
and marks — the SQL, the topic, the locks that order replicas — is each service's ``drain``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Iterable
from typing import Protocol

import asyncpg
import structlog
from prometheus_client import Counter

from services.common.kafka.producer import EventProducer

log = structlog.get_logger(__name__)


class Flusher(Protocol):
    """What a request handler needs of the outbox: wait (bounded) until its commit is published."""

    async def flush(self, timeout: float) -> bool: ...


async def publish_all(sends: Iterable[Awaitable[object]]) -> None:
    """Let every send of a batch finish, then raise the first failure: a pass marks its rows published
    only after all of them are, and a failed pass leaves them in the outbox for the next one."""
    for result in await asyncio.gather(*sends, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


class OutboxLoop(ABC):
    """The one publisher task of a process: passes on kicks and on a timer, one last pass on stop."""

    def __init__(
        self, pool: asyncpg.Pool, producer: EventProducer, interval: float, failed_passes: Counter, name: str,
    ) -> None:
        """``failed_passes`` is the service's own counter; ``name`` prefixes the log events."""
        self._pool = pool
        self._producer = producer
        self._interval = interval
        self._failed_passes = failed_passes
        self._name = name
        self._kick = asyncio.Event()
        self._done = asyncio.Condition()
        self._started = 0  # passes begun
        self._completed = 0  # passes finished (successfully or not)
        self._last_ok = False

    @abstractmethod
    async def drain(self) -> None:
        """Publish and mark everything pending now; raise if it could not (the rows stay for later)."""

    async def flush(self, timeout: float) -> bool:
        """Ask for a pass now; wait until one that began after this call has finished.

        Returns True when that pass succeeded within ``timeout``. Never raises: a change that could
        not be published now is published by a later pass (the rows stay in the outbox).
        """
        target = self._started + 1
        self._kick.set()
        try:
            async with self._done:
                await asyncio.wait_for(self._done.wait_for(lambda: self._completed >= target), timeout)
        except TimeoutError:
            return False
        return self._last_ok

    async def _pass(self) -> None:
        self._started += 1
        ok = False
        try:
            if self._producer.started:
                await self.drain()
                ok = True
        except Exception as exc:  # noqa: BLE001 - Kafka or PostgreSQL down: the rows stay, retry later
            self._failed_passes.inc()
            log.warning(f"{self._name}_pass_failed", error=str(exc))
        finally:
            async with self._done:
                self._completed = self._started
                self._last_ok = ok
                self._done.notify_all()

    async def run(self, stop: asyncio.Event, final_pass_timeout: float = 5.0) -> None:
        """Pass on every kick and every ``interval``; after ``stop``, one last bounded pass."""
        stopped = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                kicked = asyncio.create_task(self._kick.wait())
                await asyncio.wait(
                    {kicked, stopped}, timeout=self._interval, return_when=asyncio.FIRST_COMPLETED
                )
                kicked.cancel()
                if stop.is_set():
                    break
                self._kick.clear()
                await self._pass()
        finally:
            stopped.cancel()
        try:
            await asyncio.wait_for(self._pass(), final_pass_timeout)
        except TimeoutError:
            log.warning(f"{self._name}_final_pass_timed_out")
