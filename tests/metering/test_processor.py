from __future__ import annotations

from pathlib import Path

import orjson
from aiokafka import ConsumerRecord

from services.common.events.usage import UsageEventV1
from services.metering.processor import process_usage

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "services/common/events/examples/usage.v1").glob("*.json"))


def record(value: bytes | None, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="usage.v1", partition=0, offset=offset, timestamp=0, timestamp_type=0, key=b"acct",
        value=value, checksum=None, serialized_key_size=4, serialized_value_size=len(value or b""),
        headers=(),
    )


def test_every_usage_example_becomes_one_row_with_its_token_counts() -> None:
    result = process_usage([record(p.read_bytes(), i) for i, p in enumerate(EXAMPLES)])
    assert result.dead_letters == []
    assert len(result.rows) == len(EXAMPLES)
    for row, path in zip(result.rows, EXAMPLES, strict=True):
        event = UsageEventV1.from_bytes(path.read_bytes())
        assert row["request_id"] == event.request_id
        assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"],
                row["output_tokens"], row["reasoning_tokens"]) == (
            event.tokens.input, event.tokens.cached_input, event.tokens.cache_write,
            event.tokens.output, event.tokens.reasoning)


def test_bad_records_become_dead_letters_and_never_rows() -> None:
    good = EXAMPLES[0].read_bytes()
    negative = orjson.loads(good)
    negative["tokens"]["input"] = -1
    result = process_usage([record(b"{oops"), record(None), record(orjson.dumps(negative)), record(good)])
    assert len(result.rows) == 1
    assert len(result.dead_letters) == 3
    assert "tokens.input" in result.dead_letters[2].reason
    assert result.dead_letters[1].reason == "empty record"
