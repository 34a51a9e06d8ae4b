"""The usage.v1 consumer of metering, wired: ``BatchConsumer`` + this processor + ``UsageWriter``.

``UsageProcessor`` is the pure ``to_row`` bound to the live price book, plus two things that need a
clock or a counter and so stay out of the pure function:

- an event naming a price version metering has not seen yet is not dead-lettered at once: the edge
  may have applied a new catalog.v1 price a moment before metering did (two consumers of one topic,
  no order between them). The batch is failed instead (``PriceNotYetKnown``), which makes the consumer
  rewind and retry it after its backoff, until the version shows up or ``price_wait_seconds`` have
  passed since it was first missed — then it is a dead letter like any other bad event.
- dead letters are counted by kind in ``tollgate_metering_dead_letters_total``, once per record even
  when its batch is retried (a per-partition high-water mark of offsets already counted).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import structlog
from prometheus_client import Counter

from services.common.events.catalog import PriceEntry
from services.common.kafka.batch_consumer import (
    BatchBounds,
    BatchConsumer,
    DeadLetter,
    ProcessResult,
    Record,
)
from services.common.kafka.producer import EventProducer
from services.common.price_book import PriceNotYetKnown, PriceWait
from services.metering.processor import Rejected, UsageRow, to_row
from services.metering.settings import MeteringSettings
from services.metering.store import UsageStore
from services.metering.writer import UsageWriter

log = structlog.get_logger(__name__)
GROUP_ID = "metering.usage"
TOPIC = "usage.v1"
DEAD_LETTER_TOPIC = "usage.v1.dlq"
DEAD_LETTERS = Counter(
    "tollgate_metering_dead_letters_total", "usage.v1 records sent to usage.v1.dlq, by kind", ["kind"]
)


class UsageProcessor:
    def __init__(
        self, prices: Mapping[str, PriceEntry], wait_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prices = prices
        self._price_wait = PriceWait(wait_seconds, clock)
        self._counted: dict[tuple[str, int], int] = {}

    def _count(self, rec: Record, kind: str) -> None:
        tp = (rec.topic, rec.partition)
        if rec.offset > self._counted.get(tp, -1):
            self._counted[tp] = rec.offset
            DEAD_LETTERS.labels(kind).inc()

    def __call__(self, records: Sequence[Record]) -> ProcessResult[UsageRow]:
        result: ProcessResult[UsageRow] = ProcessResult()
        waiting: set[str] = set()
        for rec in records:
            outcome = to_row(rec.value, self._prices)
            if not isinstance(outcome, Rejected):
                result.rows.append(outcome)
                continue
            version = outcome.price_version
            if version is not None and not self._price_wait.give_up_on(version):
                waiting.add(version)
                continue
            result.dead_letters.append(DeadLetter(rec, outcome.reason))
        if waiting:
            log.warning("price_version_not_yet_known", price_versions=sorted(waiting)[:10],
                        waiting_up_to_s=self._price_wait.seconds)
            raise PriceNotYetKnown(f"price versions not in catalog.v1 yet: {sorted(waiting)[:10]}")
        for dead in result.dead_letters:
            self._count(dead.record, dead.reason.partition(":")[0])
        return result


def build_consumer(
    settings: MeteringSettings, store: UsageStore, prices: Mapping[str, PriceEntry],
    producer: EventProducer, group_id: str = GROUP_ID,
) -> BatchConsumer[UsageRow]:
    """The one wiring of topic → processor → table, shared by the service, the tests and the bench.
    Another ``group_id`` reads usage.v1 from offset 0 again (a replay)."""
    return BatchConsumer(
        settings=settings,
        topics=[TOPIC],
        group_id=group_id,
        processor=UsageProcessor(prices, settings.price_wait_seconds),
        writer=UsageWriter(store),
        dead_letter_topic=DEAD_LETTER_TOPIC,
        producer=producer,
        bounds=BatchBounds(settings.batch_max_records, settings.batch_max_wait_seconds),
        pipeline=True,  # parse batch n+1 while chDB writes batch n (measured: ~35k → ~47k events/s)
    )
