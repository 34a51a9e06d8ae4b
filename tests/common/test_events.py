from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from services.common.events import SCHEMAS, UsageEventV1

EXAMPLES = Path(__file__).resolve().parents[2] / "services" / "common" / "events" / "examples"
ALL_EXAMPLES = sorted(EXAMPLES.glob("*/*.json"))


def test_every_topic_has_examples_and_every_example_folder_is_a_topic() -> None:
    folders = {p.name for p in EXAMPLES.iterdir() if p.is_dir()}
    assert folders == set(SCHEMAS)
    for topic in SCHEMAS:
        assert list((EXAMPLES / topic).glob("*.json")), f"no example payload for {topic}"


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_validates_and_round_trips(path: Path) -> None:
    schema = SCHEMAS[path.parent.name]
    event = schema.from_bytes(path.read_bytes())
    again = schema.from_bytes(event.to_bytes())
    assert again == event
    assert event.to_bytes() == again.to_bytes()
    assert orjson.loads(event.to_bytes()) == event.model_dump(mode="json", by_alias=True)


def _usage(**changes: object) -> bytes:
    data = orjson.loads((EXAMPLES / "usage.v1" / "ok_stream.json").read_bytes())
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"tokens__output": -1}, "greater than or equal to 0"),
        ({"tokens__reasoning": 99}, "reasoning tokens"),
        ({"unexpected": 1}, "Extra inputs are not permitted"),
        ({"started_at": "2026-11-23T10:15:30"}, "timezone"),
        ({"status": "maybe"}, "Input should be"),
        ({"request_id": ""}, "at least 1 character"),
        ({"schema": "usage.v2"}, "Input should be 'usage.v1'"),
    ],
)
def test_usage_schema_rejects_bad_events(change: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        UsageEventV1.from_bytes(_usage(**change))


def test_events_are_immutable() -> None:
    event = UsageEventV1.from_bytes(_usage())
    with pytest.raises(ValidationError):
        event.request_id = "other"  # type: ignore[misc]
