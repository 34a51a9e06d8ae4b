"""Properties of the admission arithmetic (hypothesis): the worst case really bounds the cost, a
settlement turns any reservation into exactly what was used, and the Redis scripts keep windows and
counters exact for any sequence of reservations and settlements."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.stack.platform import Platform
from services.common.events.catalog import PriceEntry
from services.common.pricing import TokenCounts, cost_micros
from services.common.redis_keys import key_base
from services.edge.admission.limiter import Admission, OutagePolicy
from services.edge.admission.reservation import Reservation, worst_case_cost
from services.edge.admission.ticket import Ticket
from tests.edge.admission.conftest import key_with
from tollgate.router.v1 import router_pb2

price_per_mtok = st.integers(min_value=0, max_value=200_000_000)  # up to $200 per 1M tokens
prices = st.builds(
    PriceEntry, id=st.just("p"), model_id=st.just("m"),
    effective_from=st.just(datetime.now(UTC) - timedelta(days=1)),
    input_micros_per_mtok=price_per_mtok, cached_input_micros_per_mtok=price_per_mtok,
    cache_write_micros_per_mtok=price_per_mtok, output_micros_per_mtok=price_per_mtok,
)
counts = st.integers(min_value=0, max_value=2_000_000)


@given(prices, counts, counts, st.data())
def test_the_worst_case_is_never_below_the_real_cost(price: PriceEntry, bound: int, max_out: int,
                                                     data: st.DataObject) -> None:
    # any split of at most `bound` input tokens into kinds, and at most `max_out` output tokens
    cached = data.draw(st.integers(0, bound))
    written = data.draw(st.integers(0, bound - cached))
    plain = data.draw(st.integers(0, bound - cached - written))
    out = data.draw(st.integers(0, max_out))
    real = cost_micros(price, TokenCounts(input=plain, cached_input=cached, cache_write=written, output=out))
    assert real <= worst_case_cost(price, bound, max_out)


@given(prices, counts, counts)
def test_cost_is_rounded_up_once_and_below_one_micro_off(price: PriceEntry, tokens_in: int, tokens_out: int) -> None:
    exact = tokens_in * price.input_micros_per_mtok + tokens_out * price.output_micros_per_mtok
    cost = cost_micros(price, TokenCounts(input=tokens_in, output=tokens_out))
    assert 0 <= cost * 1_000_000 - exact < 1_000_000


@given(prices, counts, counts, counts, counts, st.booleans())
def test_settlement_turns_the_reservation_into_exactly_what_was_used(
    price: PriceEntry, reserved_in: int, reserved_out: int, used_in: int, used_out: int, reported: bool
) -> None:
    reservation = Reservation(reserved_in, reserved_out, worst_case_cost(price, reserved_in, reserved_out))
    ticket = Ticket("k", reservation, price, output_started=True)
    if reported:
        ticket.usage = router_pb2.Usage(input_tokens=used_in, output_tokens=used_out)
    token_delta, cost_delta = ticket.settlement()
    if reported:
        assert reservation.tokens + token_delta == used_in + used_out
        real = cost_micros(price, TokenCounts(input=used_in, output=used_out))
        assert reservation.cost_micros + cost_delta == real
    else:  # no usage after output began: the worst case stays spent (fail closed)
        assert (token_delta, cost_delta) == (0, 0)


SCRIPT_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SCRIPT_SETTINGS
@given(
    limit=st.integers(0, 5000),
    sizes=st.lists(st.tuples(st.integers(0, 1500), st.floats(0, 1)), min_size=1, max_size=25),
    window=st.integers(60, 366 * 86400),
)
def test_scripts_keep_token_and_budget_counters_exact(
    platform: Platform, limit: int, sizes: list[tuple[int, float]], window: int
) -> None:
    """For any sequence: admitted iff it fits what is left; the counters hold exactly the reservations,
    then exactly the real use once settled; the budget window starts on a multiple of its length."""

    async def run() -> None:
        client = redis.from_url(platform.redis.url)
        prefix = f"tgprop{uuid.uuid4().hex[:8]}"
        admission = Admission(client, prefix, 30, OutagePolicy(), 600)
        key = key_with(tokens_per_minute=limit, budget_micros=limit, budget_window_seconds=window)
        used, tickets, real_total = 0, [], 0
        try:
            for size, fraction in sizes:
                fits = used + size <= limit
                try:
                    ticket = await admission.admit(key, Reservation(size, 0, size), None)
                except Exception:
                    assert not fits
                    continue
                assert fits
                used += size
                real = int(size * fraction)
                ticket.usage, ticket.price = router_pb2.Usage(input_tokens=real), None
                tickets.append((ticket, real))
            base = key_base(prefix, key.account_id, key.key_id)
            assert sum(int(v) for v in (await client.hgetall(f"{base}:tpm")).values()) == used
            budget_keys = [k async for k in client.scan_iter(f"{base}:budget:*")]
            now = int((await client.time())[0])
            for budget_key in budget_keys:
                start = int(budget_key.decode().rsplit(":", 1)[1])
                assert start % window == 0 and start <= now < start + window + 1
            for ticket, real in tickets:
                real_total += real
                # tokens settle to the real count; cost was reserved as `size` and the price is None,
                # so the budget settles to zero: the counter must end at exactly zero
                admission.release(ticket)
            await admission.drain()
            assert sum(int(v) for v in (await client.hgetall(f"{base}:tpm")).values()) == real_total
            if budget_keys:
                assert int(await client.get(budget_keys[0])) == 0
        finally:
            await client.aclose()

    asyncio.run(run())
