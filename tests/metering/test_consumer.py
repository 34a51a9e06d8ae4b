"""The consumer's processor around the pure one: waiting for a price version metering has not seen yet,
and counting dead letters once per record."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from services.common.events.catalog import CatalogEventV1
from services.common.price_book import PriceBook, PriceNotYetKnown
from services.metering.consumer import UsageProcessor
from tests.metering.factory import PRICES, T0, raw, record, usage


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def dead_letters(kind: str) -> float:
    return REGISTRY.get_sample_value("tollgate_metering_dead_letters_total", {"kind": kind}) or 0.0


def test_an_unknown_price_version_is_retried_until_the_catalog_has_it() -> None:
    book, clock = PriceBook(), Clock()
    processor = UsageProcessor(book, wait_seconds=10, clock=clock)
    batch = [record(raw(usage()), 0)]
    with pytest.raises(PriceNotYetKnown):
        processor(batch)
    clock.now += 4
    with pytest.raises(PriceNotYetKnown):
        processor(batch)
    book.apply("price:p_mini", CatalogEventV1(version=1, entity=PRICES["p_mini"], updated_at=T0))
    result = processor(batch)
    assert len(result.rows) == 1 and result.dead_letters == []


def test_an_unknown_price_version_is_dead_lettered_once_the_wait_is_over() -> None:
    clock = Clock()
    processor = UsageProcessor(PriceBook(), wait_seconds=10, clock=clock)
    batch = [record(raw(usage(price_version="p_never")), 7)]
    with pytest.raises(PriceNotYetKnown):
        processor(batch)
    clock.now += 10
    before = dead_letters("unknown_price_version")
    result = processor(batch)
    assert [d.reason for d in result.dead_letters] == [
        "unknown_price_version: price version 'p_never' is not in catalog.v1"]
    assert dead_letters("unknown_price_version") == before + 1


def test_a_record_retried_with_its_batch_is_counted_once() -> None:
    processor = UsageProcessor(PriceBook(PRICES), wait_seconds=0)
    batch = [record(b"junk", 3, partition=1), record(None, 4, partition=1), record(b"junk", 3, partition=2)]
    schema, empty = dead_letters("schema"), dead_letters("empty")
    for _ in range(3):  # the write failed twice: the same records come back
        processor(batch)
    assert dead_letters("schema") == schema + 2
    assert dead_letters("empty") == empty + 1


def test_a_deleted_price_version_stays_priceable() -> None:
    book = PriceBook()
    book.apply("price:p_mini", CatalogEventV1(version=1, entity=PRICES["p_mini"], updated_at=T0))
    book.apply("price:p_mini", None)  # tombstone
    book.apply("price:p_mini", CatalogEventV1(version=2, deleted=True, entity=PRICES["p_mini"], updated_at=T0))
    book.apply("model:x", None)
    assert book["p_mini"] == PRICES["p_mini"]
    result = UsageProcessor(book, wait_seconds=0)([record(raw(usage()), 0)])
    assert len(result.rows) == 1
