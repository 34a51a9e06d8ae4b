"""Start a dependency client in the background, retrying until it connects or the service stops.

A service must come up (and answer /healthz, report not-ready on /readyz) while a dependency is down,
rather than crash-loop: the orchestrator, not the process, decides what to do about an outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


async def keep_trying(
    start: Callable[[], Awaitable[None]],
    what: str,
    stop: asyncio.Event,
    first_delay: float = 0.2,
    max_delay: float = 5.0,
) -> bool:
    """Call ``start`` until it succeeds (True) or ``stop`` is set (False)."""
    delay = first_delay
    while not stop.is_set():
        try:
            await start()
            log.info("dependency_connected", dependency=what)
            return True
        except Exception as exc:  # noqa: BLE001 - any failure to connect means: wait and retry
            log.warning("dependency_unavailable", dependency=what, error=str(exc), retry_in=delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, max_delay)
    return False
