"""An answer of several choices: Chat Completions' and legacy completions' ``n``, and a completion's
batch of prompts (``n`` choices each, in the prompts' order).

Each choice is its own generation: its own router call (``convert.to_generate_requests`` seeds choice
``i`` of a prompt ``seed + i``), with its own fallback along the model's chain. That serves ``n`` on
every backend alike (Triton and Anthropic's API have no ``n``) and keeps one choice per router call, as
everything behind the edge assumes. The price of it: each choice's prompt is read, and billed, as
its own (a provider's prompt cache may make the later ones cached input), where OpenAI bills a
prompt once for all its choices. The request is still one request: one admission (reserving every
choice's worst case), one concurrency slot, one usage event with every choice's tokens added up
(``usage.record.choices_event``).

- **Whole answers**: every choice's call at once; the answer is their choices in order, with their
  usage added up. One choice that fails fails the request (the others are stopped, and billed for
  what they used), as one failed generation fails a request of one choice.
- **Streams**: nothing is sent until every choice has its first message, so that a failure before
  then is still a plain HTTP error; then every choice opens, in index order (the SDKs' stream helpers
  need the choices to appear in order), and each choice's chunks go out as they come, with its
  ``index``. A choice that ends writes its final chunk; once every choice has ended, the usage chunk
  (when asked) and ``[DONE]``. A choice that fails after the first byte ends the whole stream with the
  error event (DESIGN promise 7) and stops the others. A stream whose choices take longer than the
  keep-alive interval to start, or go quiet that long, gets keep-alives as a stream of one does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from services.common.errors import TollgateError, UpstreamError
from services.edge.admitted import Admitted
from services.edge.convert import EventStream
from services.edge.convert_openai import openai_usage
from services.edge.finish import finish_error
from services.edge.router_client import RouterClient, StreamCall
from services.edge.usage.record import added
from services.edge.wire import openai_responses as r
from tollgate.router.v1 import router_pb2

_Item = tuple[int, router_pb2.GenerateResponse | TollgateError]
ENDED_WITHOUT_FINISH = "The backend stream ended without a final message."


@runtime_checkable
class ChoiceEncoder(EventStream, Protocol):
    """A stream encoder of an API with choices (``streams_openai``)."""

    def for_choice(self, index: int) -> ChoiceEncoder: ...
    def end_choice(self, finish: router_pb2.Finish) -> bytes: ...
    def close(self, usage: router_pb2.Usage) -> bytes: ...


def choice_encoders(encoder: EventStream, choices: int) -> list[ChoiceEncoder]:
    """``encoder`` and one like it for each further choice."""
    if not isinstance(encoder, ChoiceEncoder):
        raise TypeError(f"{type(encoder).__name__} has no choices")
    return [encoder] + [encoder.for_choice(index) for index in range(1, choices)]


def merged_answer(bodies: Sequence[BaseModel], wholes: Sequence[router_pb2.CompleteResponse]) -> BaseModel:
    """The whole answer of several choices: each choice's body's choice, in order, and their usage
    added up."""
    choices: list[BaseModel] = []
    for index, body in enumerate(bodies):
        assert isinstance(body, r.ChatCompletion | r.Completion)
        choices += [choice.model_copy(update={"index": index}) for choice in body.choices]
    usage = openai_usage(added([whole.finish.usage for whole in wholes]))
    return bodies[0].model_copy(update={"choices": choices, "usage": usage})


async def complete_choices(
    router: RouterClient, requests: Sequence[router_pb2.GenerateRequest], timeout: float, admitted: Admitted
) -> list[router_pb2.CompleteResponse]:
    """Every choice's whole answer, in order, each observed by its choice's record. The first failure
    stops the others (cancelling a call stops its generation, whose account its record gets)."""
    calls = [
        asyncio.ensure_future(router.complete(request, timeout, partial(admitted.observe_stopped, choice=i)))
        for i, request in enumerate(requests)
    ]
    try:
        wholes = list(await asyncio.gather(*calls))
    finally:
        if unfinished := [call for call in calls if not call.done()]:
            for call in unfinished:
                call.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)  # their accounts, before the end
    for index, whole in enumerate(wholes):
        admitted.observe_whole(whole.finish, index)
    return wholes


@dataclass
class ChoiceStream:
    """Every choice's router stream, read at once: ``items`` gives ``(choice, message)`` as they come."""

    calls: list[StreamCall]
    admitted: Admitted
    quiet_after: float | None

    def __post_init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._items: deque[_Item] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._readers = [asyncio.ensure_future(self._read(i, call)) for i, call in enumerate(self.calls)]
        self._early: list[_Item] = []  # what came before the first byte, sent first

    @classmethod
    async def open(
        cls, router: RouterClient, requests: Sequence[router_pb2.GenerateRequest], timeout: float,
        admitted: Admitted, quiet_after: float | None,
    ) -> ChoiceStream:
        calls: list[StreamCall] = []
        try:
            for request in requests:
                calls.append(await router.stream(request, timeout))
        except BaseException:
            await _stop_all(calls, admitted)
            raise
        return cls(calls, admitted, quiet_after)

    async def _read(self, index: int, call: StreamCall) -> None:
        try:
            message: router_pb2.GenerateResponse | None = await call.first()
            rest = call.rest()
            while message is not None:
                self._put((index, message))
                if message.WhichOneof("event") == "finish":
                    return
                message = await anext(rest, None)
            self._put((index, UpstreamError(ENDED_WITHOUT_FINISH)))
        except TollgateError as exc:
            self._put((index, exc))

    def _put(self, item: _Item) -> None:
        self._items.append(item)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _next(self) -> _Item | None:
        """The next message of any choice; None when the keep-alive interval passed without one.

        A plain future and a timer, not ``asyncio.wait_for``: before Python 3.12 ``wait_for`` can
        swallow the task's cancellation when its inner wait completes in the same loop iteration,
        and a client that left while a chunk arrived would then never stop the generations."""
        if not self._items:
            self._waiter = self._loop.create_future()
            timer = None if self.quiet_after is None else self._loop.call_later(self.quiet_after, self._wake)
            try:
                await self._waiter
            finally:
                if timer is not None:
                    timer.cancel()
            if not self._items:
                return None
        return self._items.popleft()

    async def first(self) -> bool:
        """Wait until every choice has its first message (True), or the keep-alive interval passed
        first (False: the stream starts with a keep-alive). A choice that fails first raises: nothing
        has been sent."""
        waiting = set(range(len(self.calls)))
        while waiting:
            if (item := await self._next()) is None:
                return False
            if isinstance(item[1], TollgateError):
                raise item[1]
            self._early.append(item)
            waiting.discard(item[0])
        return True

    async def items(self) -> AsyncIterator[_Item | None]:
        """What came before the first byte, then every later message as it comes (None: a quiet
        interval)."""
        for item in self._early:
            yield item
        self._early.clear()
        while True:
            yield await self._next()

    async def stop(self) -> router_pb2.Finish | None:
        """Stop every choice's call; each record gets the router's account of its generation. None:
        there is no one account to give back (``StreamCall.stop``'s place in the request flow)."""
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await _stop_all(self.calls, self.admitted)
        return None


async def _stop_all(calls: Sequence[StreamCall], admitted: Admitted) -> None:
    accounts = await asyncio.gather(*(call.stop() for call in calls))
    for index, account in enumerate(accounts):
        if account is not None:
            admitted.observe_stopped(account, index)


def encode_delta(encoder: EventStream, delta: router_pb2.Delta) -> bytes:
    """One router delta as the client's chunks: thinking first (it came before the text it travels
    with, and its block opens first), then each piece of text as its own chunk, the logprobs the client
    asked for, the tool-call fragments."""
    out = encoder.thinking(delta.thinking) if delta.thinking else b""
    if delta.pieces:
        out += b"".join(encoder.delta(piece) for piece in delta.pieces)
    else:
        out += encoder.delta(delta.text)
    if delta.logprobs_json:
        out += encoder.logprobs(delta.logprobs_json)
    return out + encoder.tool_calls(delta.tool_calls) if delta.tool_calls else out


async def choice_events(
    stream: ChoiceStream, encoders: Sequence[ChoiceEncoder], admitted: Admitted, quiet_start: bool
) -> AsyncGenerator[bytes, None]:
    """The SSE bytes of an answer of several choices, one encoder per choice (``for_choice``)."""
    first = encoders[0]
    ended: list[router_pb2.Usage] = []
    try:
        if quiet_start:
            yield first.keep_alive()
        # every choice opens in index order: the SDKs' stream helpers add a choice the first time its
        # index comes, and take it to be the next one
        if opening := b"".join(encoder.start() for encoder in encoders):  # completions have none
            yield opening
        async for item in stream.items():
            if item is None:
                yield first.keep_alive()
                continue
            index, message = item
            if isinstance(message, TollgateError):
                raise message
            admitted.observe(message, index)
            if message.WhichOneof("event") == "delta":
                yield encode_delta(encoders[index], message.delta)
                continue
            finish = message.finish
            if (error := finish_error(finish)) is not None:
                yield encoders[index].error(error)
                return
            ended.append(finish.usage)
            out = encoders[index].end_choice(finish)
            if len(ended) == len(encoders):
                yield out + first.close(added(ended))
                return
            yield out
    except TollgateError as exc:
        admitted.fail(exc)
        yield first.error(exc)
    finally:
        await stream.stop()

