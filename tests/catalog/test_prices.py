"""Price versions: usage is priced at the version in force when it was admitted, whatever changes
after; versions are exact decimals per 1M tokens in and out, and never change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from services.catalog.manage.wire import PriceCreate
from services.common.events.catalog import PriceEntry
from services.common.events.usage import UsageEventV1
from services.common.money import format_micros, parse_micros
from services.common.pricing import TokenCounts, cost_micros
from tests.catalog.conftest import ADMIN, Catalog

M = "/v1/manage/models"
USAGE = Path(__file__).resolve().parents[2] / "services/common/events/examples/usage.v1/ok_stream.json"


def price_usage(event: UsageEventV1, versions: dict[str, PriceEntry]) -> int:
    """What metering does with a usage event: the version it names, the one rounding rule."""
    price = versions.get(event.price_version) if event.price_version else None
    tokens = TokenCounts(input=event.tokens.input, cached_input=event.tokens.cached_input,
                         cache_write=event.tokens.cache_write, output=event.tokens.output)
    return cost_micros(price, tokens, batch=event.batch)


async def test_usage_is_priced_at_the_version_in_force_at_request_time_even_after_a_change(catalog: Catalog) -> None:
    model_id = f"priced-{uuid.uuid4().hex[:8]}"
    await catalog.ok(ADMIN, "PUT", f"{M}/{model_id}", {"display_name": "p", "context_length": 8192,
                                                       "max_output_tokens": 1024})
    first = await catalog.ok(ADMIN, "POST", f"{M}/{model_id}/prices", {
        "input": "2.50", "cached_input": "1.25", "cache_write": "3.125", "output": "10.00", "batch_discount": "50"})
    assert first["status"] == "in_force" and first["input"] == "2.500000" and first["batch_discount"] == "50"
    seen = catalog.seen
    await seen.until(lambda: first["id"] in seen.view.prices, 2.0)
    admitted_at = datetime.now(UTC)
    in_force = seen.view.current_price(model_id, now=admitted_at)  # what the edge stamps on the request
    assert in_force is not None and in_force.id == first["id"]
    event = UsageEventV1.from_bytes(USAGE.read_bytes()).model_copy(update={
        "model_served": model_id, "price_version": in_force.id, "started_at": admitted_at,
        "tokens": UsageEventV1.from_bytes(USAGE.read_bytes()).tokens.model_copy(
            update={"input": 1000, "cached_input": 500, "cache_write": 100, "output": 333}),
    })

    second = await catalog.ok(ADMIN, "POST", f"{M}/{model_id}/prices", {"input": "5.00", "output": "20.00"})
    await seen.until(lambda: second["id"] in seen.view.prices, 2.0)
    assert seen.view.current_price(model_id).id == second["id"]  # type: ignore[union-attr]
    assert seen.view.current_price(model_id, now=admitted_at).id == first["id"]  # type: ignore[union-attr]

    # 1000×2.5 + 500×1.25 + 100×3.125 + 333×10 = 6767.5 micro-USD, rounded up once: 6768
    assert price_usage(event, seen.view.prices) == 6768
    assert price_usage(event.model_copy(update={"batch": True}), seen.view.prices) == 3384  # 3383.75 ↑
    listed = await catalog.ok(ADMIN, "GET", f"{M}/{model_id}/prices", query=f"at={admitted_at.isoformat().replace('+', '%2B')}")
    assert listed["in_force"] == first["id"]
    assert [(p["id"], p["status"]) for p in listed["data"]] == [(first["id"], "superseded"), (second["id"], "in_force")]
    assert (await catalog.ok(ADMIN, "GET", f"{M}/{model_id}/prices"))["in_force"] == second["id"]


async def test_a_scheduled_version_takes_over_at_its_time_and_not_before(catalog: Catalog) -> None:
    model_id = f"sched-{uuid.uuid4().hex[:8]}"
    await catalog.ok(ADMIN, "PUT", f"{M}/{model_id}", {"display_name": "s", "context_length": 8, "max_output_tokens": 8})
    now = await catalog.ok(ADMIN, "POST", f"{M}/{model_id}/prices", {"input": "1", "output": "2"})
    later = datetime.now(UTC) + timedelta(hours=1)
    scheduled = await catalog.ok(ADMIN, "POST", f"{M}/{model_id}/prices", {
        "id": f"{model_id}-next", "input": "1.5", "output": "3", "effective_from": later.isoformat()})
    assert scheduled["status"] == "scheduled" and scheduled["id"] == f"{model_id}-next"
    again = await catalog.call(ADMIN, "POST", f"{M}/{model_id}/prices", {
        "id": f"{model_id}-next", "input": "1.5", "output": "3", "effective_from": later.isoformat()})
    assert again[0] == 200 and again[1]["version"] == scheduled["version"]  # a replay is a no-op
    seen = catalog.seen
    await seen.until(lambda: scheduled["id"] in seen.view.prices, 2.0)
    assert seen.view.current_price(model_id).id == now["id"]  # type: ignore[union-attr]
    assert seen.view.current_price(model_id, now=later + timedelta(seconds=1)).id == scheduled["id"]  # type: ignore[union-attr]
    model = await catalog.ok(ADMIN, "GET", f"{M}/{model_id}")
    assert model["price"]["id"] == now["id"]


@given(st.integers(min_value=0, max_value=10**15))
def test_a_price_survives_the_round_trip_through_its_decimal_string(micros: int) -> None:
    text = format_micros(micros)
    assert parse_micros(text) == micros
    assert PriceCreate.model_validate({"input": text, "output": text}).input == micros


@given(st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False))
def test_any_decimal_of_at_most_six_places_is_exact_and_finer_is_refused(value: Decimal) -> None:
    text = format(value, "f")
    assert PriceCreate.model_validate({"input": text, "output": "0"}).input == int(value * 1_000_000)
    finer = text + ("" if "." in text else ".") + "0000001"
    try:
        PriceCreate.model_validate({"input": finer, "output": "0"})
    except ValueError as exc:
        assert "more than 6 decimal places" in str(exc)
    else:
        raise AssertionError(f"{finer} was accepted")
