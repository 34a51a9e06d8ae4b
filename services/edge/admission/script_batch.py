"""Calls of one Lua script that are ready together go to Redis together: one pipelined round trip.

Under load, many requests reach admission while an earlier admission is still on its way to Redis.
Sent one by one, each call pays for a pooled connection's checkout and release, its own socket write,
its own wake-up on the reply and redis-py's per-command bookkeeping, and the edge spent more CPU on that
than Redis spends running the script: 176 µs per request for admit and settle, 104 µs batched
(docs/benchmarks.md). Batched, those costs are paid once per round trip; each call pays only for
packing its command and reading its reply.

One round trip at a time, like the settlements: the calls made while one is out go in the next. Nothing
waits for a timer, so a call made on an idle edge goes out at once, alone; and a batcher holds one
pooled connection at most, so the admission gate's count of connections left for settlements and lease
renewals stays true.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from prometheus_client import Counter
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, NoScriptError, ResponseError

ScriptCall = tuple[Sequence[str], Sequence[int | str]]  # keys, args
MAX_BATCH = 256  # calls per round trip

ROUND_TRIPS = Counter(
    "tollgate_admission_round_trips_total", "Pipelined round trips of admission scripts to Redis; "
    "calls / round trips is how many shared one", ["script"],
)
CALLS = Counter("tollgate_admission_script_calls_total", "Admission script calls sent to Redis", ["script"])


async def run_pipelined(client: redis.Redis, script: AsyncScript, calls: Sequence[ScriptCall]) -> list[Any]:
    """Each call's reply, or its own error (a script error, Redis's), in order; raises the round
    trip's error (a connection failure, a timeout) when the whole pipeline failed. Calls that found
    the script missing (Redis restarted, SCRIPT FLUSH) did not run: the script is loaded and they
    are sent again."""
    replies = await _pipelined(client, script, calls)
    lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if lost:
        await client.script_load(script.script)
        for i, reply in zip(lost, await _pipelined(client, script, [calls[i] for i in lost]), strict=True):
            replies[i] = reply
    return replies


async def _pipelined(client: redis.Redis, script: AsyncScript, calls: Sequence[ScriptCall]) -> list[Any]:
    if len(calls) == 1:  # a pipeline of one costs redis-py a fifth more than the command alone
        ((keys, args),) = calls
        try:
            return [await client.evalsha(script.sha, len(keys), *keys, *args)]
        except ResponseError as exc:  # the script's own error, or NOSCRIPT: this call's reply
            return [exc]
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        # by hash, not as a pipeline script: no SCRIPT EXISTS round trip per batch
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies


_LEAD = object()  # what a queued call is woken with when it is its turn to send the queue


class ScriptBatch:
    """Awaitable calls of one script, sent in batches (see the module's docstring).

    No task of its own: a call made while no round trip is out sends at once, from its request's
    task (on an idle edge the batcher costs nothing over a plain call), and the calls made while it
    is out queue. When it is back, the first call in the queue is woken to send itself and the rest
    of the queue and to hand each its reply, and so on while calls keep queueing. ``round_trips``
    may be out at once: one alone would make requests on a lightly loaded edge wait for each other."""

    def __init__(self, client: redis.Redis, script: AsyncScript, name: str, round_trips: int = 2) -> None:
        self._client = client
        self._script = script
        self._most_out = round_trips
        self._out = 0  # round trips out, or whose senders have been woken
        self._queue: list[tuple[ScriptCall, asyncio.Future[Any]]] = []
        self._round_trips, self._calls = ROUND_TRIPS.labels(name), CALLS.labels(name)

    async def call(self, keys: Sequence[str], args: Sequence[int | str]) -> Any:
        """The script's reply; raises its error, or the round trip's."""
        mine: asyncio.Future[Any] | None = None
        if self._out < self._most_out:
            self._out += 1
        else:
            mine = asyncio.get_running_loop().create_future()
            self._queue.append(((keys, args), mine))
            try:
                outcome = await mine
            except asyncio.CancelledError:
                if mine.done() and not mine.cancelled():  # woken to send, and cancelled before it ran
                    self._hand_over()
                raise
            if outcome is not _LEAD:
                return outcome
        try:
            await asyncio.sleep(0)  # one turn of the loop: the calls made in it join this round trip
        except asyncio.CancelledError:
            self._hand_over()
            raise
        taken, self._queue = self._queue[:MAX_BATCH - 1], self._queue[MAX_BATCH - 1:]
        batch: list[tuple[ScriptCall, asyncio.Future[Any] | None]] = [((keys, args), mine)]
        batch += [(call, future) for call, future in taken if not future.done()]  # gone: not sent
        return _outcome(await self._send(batch, mine))

    async def _send(
        self, batch: list[tuple[ScriptCall, asyncio.Future[Any] | None]],
        mine: asyncio.Future[Any] | None = None,
    ) -> Any:
        """Send ``batch``, hand the others their replies, return the sender's own (reply or error)."""
        self._round_trips.inc()
        self._calls.inc(len(batch))
        try:
            replies = await run_pipelined(self._client, self._script, [call for call, _ in batch])
        except BaseException as exc:
            # the sender's request was cancelled mid-trip (the others' calls may or may not have run:
            # to them it is a dropped connection), or the round trip failed (every call in it did)
            failure = exc if isinstance(exc, Exception) else ConnectionError("the round trip was cut short")
            for _, future in batch:
                if future is not None and future is not mine and not future.done():
                    future.set_exception(failure)
            raise
        finally:
            self._hand_over()
        own: Any = None
        for (_, future), reply in zip(batch, replies, strict=True):
            if future is None or future is mine:
                own = reply
            elif future.done():  # its request went away while the batch was out
                continue
            elif isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        return own

    def _hand_over(self) -> None:
        """Wake the first call still waiting to send the queue, or mark the batcher idle."""
        while self._queue:
            _, future = self._queue.pop(0)
            if not future.done():  # else its request went away: not sent
                future.set_result(_LEAD)
                return
        self._out -= 1


def _outcome(reply: Any) -> Any:
    if isinstance(reply, Exception):
        raise reply
    return reply
