"""usage.v1 → priced rows, pure: every example payload, the pricing rule, and every way a record fails."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from services.common.events.catalog import PriceEntry
from services.common.events.usage import UsageEventV1
from services.common.pricing import TokenCounts, cost_micros
from services.metering.processor import COLUMN_INDEX, MAX_TOKENS, Rejected, process_usage, to_row
from tests.metering.factory import PRICES, T0, expected_cost, raw, record, usage

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "services/common/events/examples/usage.v1").glob("*.json"))


def col(row: tuple[object, ...], name: str) -> object:
    return row[COLUMN_INDEX[name]]


def example_prices() -> dict[str, PriceEntry]:
    """A price for every version the examples name (amounts differ per version)."""
    out = {}
    for i, path in enumerate(EXAMPLES):
        version = UsageEventV1.from_bytes(path.read_bytes()).price_version
        if version:
            out[version] = PRICES["p_sonnet"].model_copy(update={"id": version, "input_micros_per_mtok": 1000 * (i + 1)})
    return out


def test_every_usage_example_becomes_one_row_priced_at_its_version() -> None:
    prices = example_prices()
    result = process_usage([record(p.read_bytes(), i) for i, p in enumerate(EXAMPLES)], prices)
    assert result.dead_letters == []
    assert len(result.rows) == len(EXAMPLES)
    for row, path in zip(result.rows, EXAMPLES, strict=True):
        event = UsageEventV1.from_bytes(path.read_bytes())
        t = event.tokens
        assert col(row, "request_id") == event.request_id
        assert (col(row, "input_tokens"), col(row, "cached_input_tokens"), col(row, "cache_write_tokens"),
                col(row, "output_tokens"), col(row, "reasoning_tokens")) == (
            t.input, t.cached_input, t.cache_write, t.output, t.reasoning)
        price = prices.get(event.price_version or "")
        assert col(row, "cost_micros") == cost_micros(price, TokenCounts(t.input, t.cached_input, t.cache_write, t.output))
        assert col(row, "price_version") == (event.price_version or "")
        assert col(row, "started_at") == int(event.started_at.timestamp() * 1000)


def test_cost_is_the_one_rounding_rule_rounded_up_once_per_request() -> None:
    # 1 input token at 150,000 µ$/1M = 0.15 µ$, plus 1 output token at 0.6 µ$: 0.75 µ$ → 1 µ$ (not 1 + 1)
    row = to_row(raw(usage(tokens={"input": 1, "output": 1})), PRICES)
    assert not isinstance(row, Rejected)
    assert col(row, "cost_micros") == 1
    big = usage(model="claude-sonnet-4-5",
                tokens={"input": 1200, "cached_input": 8000, "cache_write": 512, "output": 640, "reasoning": 128})
    row = to_row(raw(big), PRICES)
    assert not isinstance(row, Rejected)
    # 1200×3 + 8000×0.3 + 512×3.75 + 640×15 = 3600 + 2400 + 1920 + 9600 = 17,520 µ$ exactly
    assert col(row, "cost_micros") == 17_520 == expected_cost(big)


def test_reasoning_tokens_are_part_of_output_and_not_priced_twice() -> None:
    plain = to_row(raw(usage(tokens={"input": 0, "output": 1000, "reasoning": 0})), PRICES)
    thinking = to_row(raw(usage(tokens={"input": 0, "output": 1000, "reasoning": 900})), PRICES)
    assert not isinstance(plain, Rejected) and not isinstance(thinking, Rejected)
    assert col(plain, "cost_micros") == col(thinking, "cost_micros") == 600


def test_a_model_without_a_price_costs_nothing() -> None:
    row = to_row(raw(usage(model="free-model", price_version=None)), PRICES)
    assert not isinstance(row, Rejected)
    assert (col(row, "cost_micros"), col(row, "price_version")) == (0, "")


def test_a_failed_request_is_a_row_with_its_status_and_zero_cost() -> None:
    failed = usage(tokens={"input": 0, "output": 0}, status="error", error_type="upstream_timeout", ttft_ms=None)
    row = to_row(raw(failed), PRICES)
    assert not isinstance(row, Rejected)
    assert (col(row, "status"), col(row, "error_type"), col(row, "cost_micros"), col(row, "ttft_ms")) == (
        "error", "upstream_timeout", 0, None)


def test_a_batch_request_pays_the_prices_batch_discount() -> None:
    prices = {"p_mini": PRICES["p_mini"].model_copy(update={"batch_discount_bps": 5000})}
    event = usage(tokens={"input": 1_000_000, "output": 0})
    online, batch = to_row(raw(event), prices), to_row(raw({**event, "batch": True}), prices)
    assert not isinstance(online, Rejected) and not isinstance(batch, Rejected)
    assert (col(online, "cost_micros"), col(batch, "cost_micros")) == (150_000, 75_000)


def test_the_price_version_on_the_event_is_used_not_the_current_one() -> None:
    old = PRICES["p_mini"]
    new = old.model_copy(update={"id": "p_mini_v2", "input_micros_per_mtok": 300_000, "effective_from": T0})
    prices = {old.id: old, new.id: new}
    a = to_row(raw(usage(tokens={"input": 1_000_000, "output": 0})), prices)
    b = to_row(raw(usage(tokens={"input": 1_000_000, "output": 0}, price_version="p_mini_v2")), prices)
    assert not isinstance(a, Rejected) and not isinstance(b, Rejected)
    assert (col(a, "cost_micros"), col(b, "cost_micros")) == (150_000, 300_000)


def _negative() -> bytes:
    return raw(usage(tokens={"input": -1}))


@pytest.mark.parametrize(
    ("value", "kind", "fragment"),
    [
        (None, "empty", "no value"),
        (b"{oops", "schema", "Invalid JSON"),
        (b"[]", "schema", "record"),
        (_negative(), "schema", "tokens.input"),
        (raw(usage(account_id="")), "schema", "account_id"),
        (raw(usage(key_id="")), "schema", "key_id"),
        (raw(usage(tokens={"output": 5, "reasoning": 9})), "schema", "reasoning"),
        (raw({k: v for k, v in usage().items() if k != "request_id"}), "schema", "request_id"),
        (raw(usage(price_version="p_unknown")), "unknown_price_version", "p_unknown"),
        (raw(usage(tokens={"input": MAX_TOKENS + 1})), "out_of_range", "token count"),
        (raw(usage(duration_ms=2**32)), "out_of_range", "duration"),
        (raw(usage(started_at="1999-12-31T23:59:00Z")), "out_of_range", "started_at"),
    ],
)
def test_bad_records_are_rejected_with_a_kind_and_a_reason(value: bytes | None, kind: str, fragment: str) -> None:
    outcome = to_row(value, PRICES)
    assert isinstance(outcome, Rejected)
    assert outcome.kind == kind
    assert fragment in outcome.reason
    assert outcome.reason.startswith(f"{kind}: ")


def test_a_reason_never_quotes_the_records_content() -> None:
    secret = "sk-THIS-SHOULD-NOT-APPEAR"
    outcome = to_row(raw(usage(account_id=secret + " bad id")), PRICES)
    assert isinstance(outcome, Rejected)
    assert secret not in outcome.reason


def test_process_usage_keeps_good_rows_and_dead_letters_the_rest() -> None:
    good = raw(usage())
    result = process_usage([record(b"{oops", 0), record(None, 1), record(_negative(), 2), record(good, 3)], PRICES)
    assert len(result.rows) == 1
    assert [d.record.offset for d in result.dead_letters] == [0, 1, 2]
    assert [d.reason.split(":")[0] for d in result.dead_letters] == ["schema", "empty", "schema"]


def test_rows_are_json_serialisable_as_the_writer_sends_them() -> None:
    row = to_row(raw(usage()), PRICES)
    assert not isinstance(row, Rejected)
    assert orjson.loads(orjson.dumps(list(row)))[COLUMN_INDEX["request_id"]] == col(row, "request_id")
