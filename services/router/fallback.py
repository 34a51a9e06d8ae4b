"""Fallback along a deployment chain, with the one rule that keeps billing honest:

retries and fallback happen only BEFORE the first byte reaches the client. Once a deployment has
produced its first delta the request is committed to it: a later failure ends the stream with an
error (the caller turns it into an explicit error event), never a silent switch to another backend
that would generate — and bill — a second answer.

Each attempt gets its own ``Outcome``; only the committed attempt's usage is reported, so a failed
attempt is never billed.

A deployment whose backend does not take the request (``UnsupportedByBackend``: ``response_format``
on Triton, penalties on Anthropic, a raw completion on a chat-only API) refuses it before sending
anything. That is neither the client's fault while another deployment of the model takes it, nor the
backend's: the next deployment is tried, no breaker counts it, and it is not an attempt. The refusal
is the answer only when no deployment took the request and none failed trying.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import structlog

from services.common.errors import (
    DependencyUnavailable,
    Overloaded,
    RouterBusy,
    TollgateError,
    UnsupportedByBackend,
    UpstreamError,
    UpstreamTimeout,
)
from services.router.backends import Backend, EmbeddingRequest, Embeddings, GenerationRequest, Outcome
from services.router.breaker import CircuitBreaker

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Deployment:
    id: str
    provider: str
    upstream_model: str
    backend: Backend


@dataclass
class Served:
    """Who served the request, after how many attempts, with what usage. A call cancelled while an
    attempt waited for its first byte takes that attempt as served: its backend worked on the prompt,
    and whatever usage it reported before the cancel is what the cancelled call used."""

    outcome: Outcome
    deployment_id: str = ""
    provider: str = ""
    attempts: int = 0
    pieces: int = 0  # text pieces and tool-call fragments passed on: the output count of last resort
    # the serving attempt's prompt as its backend counts it (count_tokens), for a call cancelled
    # before the backend said how long the prompt was
    count_prompt: Callable[[], Awaitable[int]] | None = None

    def output_so_far(self) -> int:
        """Output tokens until now: the backend's running count where it keeps one (Triton), else one
        per piece (a chunk of an OpenAI-compatible or Anthropic stream is about a token)."""
        return max(self.outcome.output_tokens, self.pieces)


def _prompt_counter(backend: Backend, attempt: GenerationRequest) -> Callable[[], Awaitable[int]]:
    """The attempt's prompt count, asked only if a cancel needs it."""
    return lambda: backend.count_tokens(attempt)


def retryable(exc: BaseException) -> bool:
    """Backend-side trouble is worth another deployment; a client's bad request is not."""
    return isinstance(exc, UpstreamError | Overloaded | UpstreamTimeout | DependencyUnavailable)


class _Walk:
    """The bookkeeping of one request's walk along its chain, the same for generations and
    embeddings: which deployments the breakers let through, the attempts and the in-flight count,
    refusals (no attempt, no verdict) and failures (a verdict when the backend is at fault), and the
    error to answer with when no deployment answered."""

    def __init__(
        self, breakers: dict[str, CircuitBreaker], served: Served, in_flight: Counter[str] | None
    ) -> None:
        self._breakers = breakers
        self._served = served
        self._in_flight = Counter() if in_flight is None else in_flight
        self._last_error: TollgateError | None = None
        self._refusal: UnsupportedByBackend | None = None
        self._skipped = False

    def enter(self, deployment: Deployment) -> CircuitBreaker | None:
        """The deployment's breaker, its attempt begun; None when the breaker keeps it out."""
        breaker = self._breakers.setdefault(deployment.id, CircuitBreaker(deployment.id))
        if not breaker.allow():
            self._skipped = True
            return None
        self._served.attempts += 1
        self._in_flight[deployment.id] += 1
        return breaker

    def leave(self, deployment: Deployment) -> None:
        self._in_flight[deployment.id] -= 1

    def refused(self, deployment: Deployment, breaker: CircuitBreaker, exc: UnsupportedByBackend) -> None:
        breaker.release()
        self._served.attempts -= 1  # nothing was sent
        self._refusal = self._refusal or exc  # the first: the deployment the request was meant for
        log.debug("deployment_refused_request", deployment=deployment.id, param=exc.param)

    def failed(self, deployment: Deployment, breaker: CircuitBreaker, exc: TollgateError) -> None:
        """Score a failure before any answer; a client's error (no deployment would do better) is
        raised again, a backend's lets the walk move on."""
        if not retryable(exc):
            breaker.release()
            raise exc
        if isinstance(exc, RouterBusy):
            breaker.release()  # the router's own limit: no verdict on the deployment
        else:
            breaker.record_failure()
        log.warning("deployment_failed", deployment=deployment.id, error=exc.code)
        self._last_error = exc

    def no_answer(self) -> TollgateError:
        """Why no deployment of the chain answered."""
        if self._last_error is not None:
            return self._last_error  # a deployment that would take the request failed: retrying may succeed
        if self._refusal is not None and not self._skipped:
            return self._refusal  # every deployment was asked, and none takes this request
        return Overloaded("no healthy deployment is available for this model; try again shortly")


async def generate_with_fallback(
    chain: Sequence[Deployment],
    request: GenerationRequest,
    breakers: dict[str, CircuitBreaker],
    served: Served,
    in_flight: Counter[str] | None = None,
) -> AsyncGenerator[list[str], None]:
    """Yield the batches of text pieces of the first deployment that starts answering; fill
    ``served``. ``in_flight`` counts each deployment's attempts while they run (routing reads it to
    keep affinity within a deployment's share of the load)."""
    walk = _Walk(breakers, served, in_flight)
    for deployment in chain:
        breaker = walk.enter(deployment)
        if breaker is None:
            continue
        try:
            outcome = Outcome()
            attempt = replace(request, upstream_model=deployment.upstream_model)
            stream = deployment.backend.generate(attempt, outcome)
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                first = None  # a complete, empty answer is still an answer
            except UnsupportedByBackend as exc:
                await stream.aclose()
                walk.refused(deployment, breaker, exc)
                continue
            except TollgateError as exc:
                await stream.aclose()
                walk.failed(deployment, breaker, exc)
                continue
            except BaseException:  # cancelled while waiting for the first byte
                breaker.release()
                await stream.aclose()
                served.deployment_id, served.provider = deployment.id, deployment.provider
                served.outcome = outcome  # what this attempt's backend said before the cancel
                served.count_prompt = _prompt_counter(deployment.backend, attempt)
                raise
            # Committed: from here on there is no other deployment for this request.
            served.deployment_id, served.provider = deployment.id, deployment.provider
            served.outcome = outcome
            served.count_prompt = _prompt_counter(deployment.backend, attempt)
            try:
                if first is not None:
                    yield first
                    async for delta in stream:
                        yield delta
            except TollgateError as exc:
                if retryable(exc):
                    breaker.record_failure()
                else:
                    breaker.release()
                raise
            except BaseException:  # the client went away mid-stream: no verdict on the backend
                breaker.release()
                raise
            finally:
                await stream.aclose()
            breaker.record_success()
            return
        finally:
            walk.leave(deployment)
    raise walk.no_answer()


async def embed_with_fallback(
    chain: Sequence[Deployment],
    request: EmbeddingRequest,
    breakers: dict[str, CircuitBreaker],
    served: Served,
    in_flight: Counter[str] | None = None,
) -> Embeddings:
    """The embeddings of the first deployment that answers, under ``generate_with_fallback``'s rules
    (``_Walk``). An embedding is one reply, so there is no first byte to commit at: the reply is the
    commitment. ``served`` says who answered."""
    walk = _Walk(breakers, served, in_flight)
    for deployment in chain:
        breaker = walk.enter(deployment)
        if breaker is None:
            continue
        try:
            attempt = replace(request, upstream_model=deployment.upstream_model)
            embeddings = await deployment.backend.embed(attempt)
        except UnsupportedByBackend as exc:
            walk.refused(deployment, breaker, exc)
            continue
        except TollgateError as exc:
            walk.failed(deployment, breaker, exc)
            continue
        except BaseException:  # cancelled: no verdict on the deployment
            breaker.release()
            raise
        finally:
            walk.leave(deployment)
        breaker.record_success()
        served.deployment_id, served.provider = deployment.id, deployment.provider
        return embeddings
    raise walk.no_answer()
