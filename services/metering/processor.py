"""usage.v1 records → priced usage_raw rows. Pure: no I/O, no clock; the price list is an argument, so
every example payload and every bad record can be pushed through it in a unit test.

Cost is computed here, once, with ``services.common.pricing.cost_micros`` — the rounding rule admission
uses — at the price version named on the event (never the one in force now), so a replay prices the
same.

A row is a plain tuple in ``COLUMNS`` order (the consumer handles tens of thousands a second, and the
writer sends them column by column). A record that cannot become a row is ``Rejected`` with a kind
(the metric label, and the first word of the dead letter's reason) and a detail that never quotes the
record's content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError

from services.common.events.catalog import PriceEntry
from services.common.events.usage import UsageEventV1
from services.common.kafka.batch_consumer import DeadLetter, ProcessResult, Record
from services.common.pricing import TokenCounts, cost_micros

UsageRow = tuple[Any, ...]

# (column, ClickHouse type of the value as the writer sends it). Tied to the table by a test against
# system.columns; started_at travels as integer milliseconds and is converted in the INSERT.
COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("request_id", "String"),
    ("account_id", "String"),
    ("key_id", "String"),
    ("api", "String"),
    ("model_requested", "String"),
    ("model_served", "String"),
    ("deployment_id", "String"),
    ("provider", "String"),
    ("price_version", "String"),
    ("input_tokens", "UInt64"),
    ("cached_input_tokens", "UInt64"),
    ("cache_write_tokens", "UInt64"),
    ("output_tokens", "UInt64"),
    ("reasoning_tokens", "UInt64"),
    ("status", "String"),
    ("error_type", "String"),
    ("streamed", "Bool"),
    ("batch", "Bool"),
    ("started_at", "Int64"),  # ms since the epoch → DateTime64(3, 'UTC')
    ("ttft_ms", "Nullable(UInt32)"),
    ("duration_ms", "UInt32"),
    ("edge_id", "String"),
    ("attempts", "UInt8"),
    ("cost_micros", "UInt64"),
)
COLUMN_INDEX: Final = {name: i for i, (name, _) in enumerate(COLUMNS)}

# Bounds that keep one absurd event from failing a whole insert (a UInt32 overflow is an error in
# ClickHouse, and a failed insert is retried forever): such an event is dead-lettered instead.
MAX_TOKENS: Final = 10**12  # per kind and request; the largest context windows are ~10^7
MAX_MILLIS: Final = 2**32 - 1  # UInt32 columns: ~49.7 days
MAX_COST: Final = 2**63 - 1
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_EARLIEST_MS: Final = (EARLIEST - _EPOCH) // _MS
_LATEST_MS: Final = (LATEST - _EPOCH) // _MS
_INPUT, _CACHED, _WRITE, _OUTPUT, _DURATION, _TTFT, _STARTED, _COST = (COLUMN_INDEX[c] for c in (
    "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "duration_ms", "ttft_ms",
    "started_at", "cost_micros"))


@dataclass(frozen=True)
class Rejected:
    """Why a record is not a row. ``kind`` ∈ empty, schema, out_of_range, unknown_price_version."""

    kind: str
    detail: str
    price_version: str | None = None

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}"


def _schema_detail(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)[:5]
    )


def usage_row(event: UsageEventV1, price: PriceEntry | None) -> UsageRow:
    """The usage_raw row of one event, priced at ``price`` (the entry named by its price_version)."""
    t = event.tokens
    counts = TokenCounts(t.input, t.cached_input, t.cache_write, t.output)
    cost = cost_micros(price, counts, batch=event.batch)
    return (
        event.request_id, event.account_id, event.key_id, event.api, event.model_requested,
        event.model_served, event.deployment_id or "", event.provider, event.price_version or "",
        t.input, t.cached_input, t.cache_write, t.output, t.reasoning,
        event.status, event.error_type or "", event.streamed, event.batch,
        (event.started_at - _EPOCH) // _MS, event.ttft_ms, event.duration_ms, event.edge_id,
        event.attempts, cost,
    )


def _out_of_range(row: UsageRow) -> str | None:
    """What in a row would not fit its column (checked on the row: one pass, no second conversion)."""
    if max(row[_INPUT], row[_CACHED], row[_WRITE], row[_OUTPUT]) > MAX_TOKENS:
        return f"a token count above {MAX_TOKENS}"
    if row[_DURATION] > MAX_MILLIS or (row[_TTFT] or 0) > MAX_MILLIS:
        return f"a duration above {MAX_MILLIS} ms"
    if not _EARLIEST_MS <= row[_STARTED] < _LATEST_MS:
        return "started_at outside 2000-01-01 .. 2200-01-01"
    if row[_COST] > MAX_COST:
        return f"a cost above {MAX_COST} micro-USD"
    return None


def to_row(value: bytes | None, prices: Mapping[str, PriceEntry]) -> UsageRow | Rejected:
    """One record's value → its row, or why not."""
    if value is None:
        return Rejected("empty", "the record has no value")
    try:
        event = UsageEventV1.from_bytes(value)
    except ValidationError as exc:
        return Rejected("schema", _schema_detail(exc))
    price: PriceEntry | None = None
    if event.price_version is not None:
        price = prices.get(event.price_version)
        if price is None:
            return Rejected(
                "unknown_price_version", f"price version '{event.price_version}' is not in catalog.v1",
                event.price_version,
            )
    row = usage_row(event, price)
    problem = _out_of_range(row)
    return row if problem is None else Rejected("out_of_range", problem)


def process_usage(records: Sequence[Record], prices: Mapping[str, PriceEntry]) -> ProcessResult[UsageRow]:
    """Valid, priceable events become rows; anything else becomes a dead letter with the reason."""
    result: ProcessResult[UsageRow] = ProcessResult()
    for rec in records:
        outcome = to_row(rec.value, prices)
        if isinstance(outcome, Rejected):
            result.dead_letters.append(DeadLetter(rec, outcome.reason))
        else:
            result.rows.append(outcome)
    return result
