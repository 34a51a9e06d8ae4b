"""``python -m bench --metering``: metering alone, on a real Kafka broker and chDB, in one process.

1. Throughput: N usage.v1 events are produced to a fresh topic first; then the service's own consumer
   (``build_consumer``: its batch bounds, processor, writer and pipelining) drains them into an empty
   chDB store, timed from its start to the last row written.
2. Lag: with the consumer running, events are produced at a steady rate; an event's lag is the time from
   its send to the end of the INSERT that stored it (the INSERT returns once its part is committed, so a
   query issued then sees the row).
3. Idempotency cost: on a store holding 30 days of usage, the writer inserts fresh batches with its
   dedupe step and without it (what ReplacingMergeTree-only would do), and writes a batch again (all
   skipped); the 30-day daily series is read from the projections and from the raw rows with FINAL.
4. Usage API: a 30-day daily series over gRPC (the edge's path), p50/p99 of sequential calls.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import orjson
from aiokafka import AIOKafkaProducer
from grpc_health.v1 import _async as health_aio

from infra.stack.kafka import KafkaServer
from infra.stack.ports import free_port
from infra.stack.topics import ensure_topics
from services.common.events.catalog import CatalogEventV1, PriceEntry
from services.common.kafka.producer import EventProducer
from services.common.manage.grpc_server import ManagementService, build_server
from services.metering.api.context import Deps
from services.metering.api.dispatch import dispatch
from services.metering.migrate import migrate
from services.metering.processor import Rejected, UsageRow, to_row
from services.metering.service import KafkaSide
from services.metering.settings import MeteringSettings
from services.metering.store.chdb_store import ChdbStore
from services.metering.writer import UsageWriter, insert_statement
from tollgate.manage.v1 import manage_pb2, manage_pb2_grpc

TARGET_EVENTS_PER_S = 50_000
MODELS = ("gpt-4o-mini", "claude-sonnet-4-5", "smollm2-135m-instruct")
PRICES = {f"price_{m}": PriceEntry(
    id=f"price_{m}", model_id=m, effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    input_micros_per_mtok=150_000 * (i + 1), cached_input_micros_per_mtok=75_000,
    cache_write_micros_per_mtok=0, output_micros_per_mtok=600_000 * (i + 1),
) for i, m in enumerate(MODELS)}


def event(i: int, started: datetime, tag: str) -> tuple[bytes, bytes]:
    """(key, value) of a plausible usage.v1 event: 200 accounts, 3 keys each, 3 models, 2 % errors."""
    account, model, failed = f"acct_{i % 200}", MODELS[i % 3], i % 50 == 0
    value = {
        "schema": "usage.v1", "request_id": f"req_{tag}_{i}", "account_id": account,
        "key_id": f"key_{i % 200}_{i % 3}", "api": "openai.chat_completions", "model_requested": model,
        "model_served": model, "deployment_id": f"dep_{model}", "provider": "openai",
        "price_version": f"price_{model}",
        "tokens": {"input": 0 if failed else 200 + i % 700, "cached_input": 0 if failed else (i % 4) * 64,
                   "cache_write": 0, "output": 0 if failed else 20 + i % 300, "reasoning": 0},
        "status": "error" if failed else "ok", "error_type": "upstream_error" if failed else None,
        "streamed": i % 2 == 0, "batch": False, "started_at": started.isoformat(),
        "ttft_ms": None if failed else 80 + i % 400, "duration_ms": 300 + i % 5000,
        "edge_id": "edge-bench", "attempts": 1,
    }
    return account.encode(), orjson.dumps(value)


class Stopwatch(UsageWriter):
    """The real writer, noting when each batch became queryable."""

    def __init__(self, store: ChdbStore) -> None:
        super().__init__(store)
        self.rows = 0
        self.done: list[tuple[float, list[str]]] = []
        self.all_written = asyncio.Event()
        self.expect = 0

    async def write(self, rows: Sequence[UsageRow]) -> None:
        await super().write(rows)
        self.rows += len(rows)
        self.done.append((time.perf_counter(), [r[0] for r in rows]))
        if self.rows >= self.expect:
            self.all_written.set()


@dataclass(frozen=True)
class Drain:
    events: int
    seconds: float
    startup_s: float
    cpu_us_per_event: float
    batches: int

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class MeteringResults:
    drains: list[Drain] = field(default_factory=list)
    lag_rate: float = 0.0
    lag_ms: list[float] = field(default_factory=list)
    fill_rows: int = 0
    dedupe_rows_per_s: float = 0.0
    plain_rows_per_s: float = 0.0
    redeliver_rows: int = 0
    redeliver_ms: float = 0.0
    api_ms: list[float] = field(default_factory=list)
    api_admin_ms: list[float] = field(default_factory=list)
    final_ms: list[float] = field(default_factory=list)
    projection_ms: list[float] = field(default_factory=list)
    final_all_ms: list[float] = field(default_factory=list)
    projection_all_ms: list[float] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        """The median drain: the machine's other tenants move single runs by ±20 %."""
        return statistics.median(d.events_per_s for d in self.drains) if self.drains else 0.0


def pct(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[p - 1]


async def produce(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=1 << 20, enable_idempotence=True)
    await producer.start()
    try:
        pending = []
        for key, value in events:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def fresh_topics(bootstrap: str) -> MeteringSettings:
    prefix = f"mb{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, prefix=prefix)
    settings = MeteringSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix, http_port=0)
    producer = EventProducer(settings, client_id="bench-catalog")
    await producer.start()
    try:
        for price in PRICES.values():
            catalog = CatalogEventV1(version=1, entity=price, updated_at=datetime.now(UTC))
            await producer.publish("catalog.v1", catalog.record_key, catalog)
    finally:
        await producer.stop()
    return settings


async def drain(settings: MeteringSettings, store: ChdbStore, res: MeteringResults, n: int, group: str,
                lag_rate: float = 0.0, lag_seconds: float = 0.0) -> None:
    """One drain of the whole topic by a new consumer group (from offset 0) into an empty table; with a
    ``lag_rate``, the steady-rate lag is measured afterwards on the same, caught-up consumer."""
    await store.execute("TRUNCATE TABLE usage_raw")
    side = KafkaSide(settings, store, group)  # the service's own Kafka side: snapshot, then the consumer
    stopwatch = Stopwatch(store)
    stopwatch.expect = n
    side.consumer._writer = stopwatch  # the same consumer, with a stopwatch on its writer
    gc.collect()
    gc.freeze()  # as the service does once it has started
    stop = asyncio.Event()
    cpu0, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    running = asyncio.create_task(side.run(stop))
    try:
        await asyncio.wait_for(stopwatch.all_written.wait(), 600)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        # steady state: from the end of the first batch to the end of the last (start-up, the group
        # join and the first fetch are reported apart)
        first_at, first_rows = stopwatch.done[0][0], len(stopwatch.done[0][1])
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        res.drains.append(Drain(n - first_rows, stopwatch.done[-1][0] - first_at, first_at - started,
                                1e6 * cpu / n, len(stopwatch.done) - 1))
        if lag_rate:
            res.lag_rate, res.lag_ms = lag_rate, await steady_lag(settings, stopwatch, lag_rate, lag_seconds)
    finally:
        stop.set()
        await running
        await side.close()


async def steady_lag(
    settings: MeteringSettings, stopwatch: Stopwatch, rate: float, seconds: float
) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=1,
                                enable_idempotence=True)
    await producer.start()
    tag, total = uuid.uuid4().hex[:6], int(rate * seconds)
    sent: dict[str, float] = {}
    first_batch = len(stopwatch.done)
    stopwatch.expect = stopwatch.rows + total
    stopwatch.all_written.clear()
    begin = time.perf_counter()
    try:
        for i in range(total):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key, value = event(i, datetime.now(UTC), f"lag{tag}")
            sent[f"req_lag{tag}_{i}"] = time.perf_counter()
            await producer.send(settings.topic("usage.v1"), value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    await asyncio.wait_for(stopwatch.all_written.wait(), 60)
    return [1000 * (at - sent[rid]) for at, ids in stopwatch.done[first_batch:] for rid in ids if rid in sent]


async def fill_30_days(store: ChdbStore, rows: int) -> datetime:
    """``rows`` events over the 30 days before today, generated inside ClickHouse."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start_ms = int((today - timedelta(days=30)).timestamp() * 1000)
    step_ms = 30 * 86_400_000 // rows
    await store.execute(
        "INSERT INTO usage_raw (request_id, account_id, key_id, api, model_requested, model_served, "  # noqa: S608
        "deployment_id, provider, price_version, input_tokens, cached_input_tokens, cache_write_tokens, "
        "output_tokens, reasoning_tokens, status, error_type, streamed, batch, started_at, ttft_ms, "
        "duration_ms, edge_id, attempts, cost_micros) "
        "SELECT concat('fill_', toString(number)), concat('acct_', toString(number % 200)), "
        "concat('key_', toString(number % 200), '_', toString(number % 3)), 'openai.chat_completions', "
        "'m', arrayElement(['gpt-4o-mini', 'claude-sonnet-4-5', 'smollm2-135m-instruct'], number % 3 + 1), "
        "'d', 'openai', 'p', 300, 0, 0, 50, 0, if(number % 50 = 0, 'error', 'ok'), '', true, false, "
        f"fromUnixTimestamp64Milli({start_ms} + number * {step_ms}, 'UTC'), 120, 900, 'e', 1, 75 "
        f"FROM numbers({rows})"
    )
    return today


def fresh_rows(count: int, tag: str) -> list[UsageRow]:
    now = datetime.now(UTC)
    rows = []
    for i in range(count):
        row = to_row(event(i, now - timedelta(milliseconds=count - i), tag)[1], PRICES)
        assert not isinstance(row, Rejected)
        rows.append(row)
    return rows


async def idempotency_cost(
    store: ChdbStore, res: MeteringResults, batches: int = 5, size: int = 20_000
) -> None:
    """Writer throughput with and without the dedupe step (fresh rows), and a redelivered batch."""
    writer = UsageWriter(store)
    for dedupe, attr in ((True, "dedupe_rows_per_s"), (False, "plain_rows_per_s")):
        spent = 0.0
        for b in range(batches):
            rows = fresh_rows(size, f"{'d' if dedupe else 'p'}{b}{uuid.uuid4().hex[:4]}")
            sql = insert_statement(rows)
            if not dedupe:
                sql = sql[:sql.index(" WHERE (account_id, request_id) NOT IN")]
            began = time.perf_counter()
            await store.execute(sql)
            spent += time.perf_counter() - began
        setattr(res, attr, batches * size / spent)
    again = fresh_rows(size, "again")
    await writer.write(again)
    before = int((await store.query("SELECT count() AS n FROM usage_raw"))[0]["n"])
    began = time.perf_counter()
    await writer.write(again)
    res.redeliver_ms, res.redeliver_rows = 1000 * (time.perf_counter() - began), size
    if int((await store.query("SELECT count() AS n FROM usage_raw"))[0]["n"]) != before:
        raise RuntimeError("a redelivered batch added rows")


async def usage_api(store: ChdbStore, res: MeteringResults, today: datetime, calls: int) -> None:
    port = free_port()
    server = build_server(ManagementService(Deps(store), dispatch), health_aio.HealthServicer())
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    frm, to = (today - timedelta(days=30)).date().isoformat(), today.date().isoformat()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = manage_pb2_grpc.ManagementServiceStub(channel)
            for caller, query, out in (
                (manage_pb2.Caller(account_id="acct_7"), f"from={frm}&to={to}&group_by=day", res.api_ms),
                (manage_pb2.Caller(admin=True), f"from={frm}&to={to}&group_by=day&breakdown=model",
                 res.api_admin_ms),
            ):
                request = manage_pb2.ManageRequest(caller=caller, method="GET", path="/v1/manage/usage",
                                                   query=query)
                for i in range(calls + 20):  # the first 20 warm up
                    began = time.perf_counter()
                    reply = await stub.Call(request)
                    if reply.status != 200:
                        raise RuntimeError(f"usage API answered {reply.status}: {reply.body[:300]!r}")
                    if i >= 20:
                        out.append(1000 * (time.perf_counter() - began))
    finally:
        await server.stop(grace=None)
    series = ("SELECT toStartOfDay(started_at) AS d, model_served, count(), sum(cost_micros) "
              "FROM usage_raw {final} WHERE {account} toStartOfDay(started_at) >= '" + frm + "' "
              "AND toStartOfDay(started_at) < '" + to + "' GROUP BY d, model_served ORDER BY d")
    one = "account_id = 'acct_7' AND"
    for final, account, out in (("FINAL", one, res.final_ms), ("", one, res.projection_ms),
                                ("FINAL", "", res.final_all_ms), ("", "", res.projection_all_ms)):
        for _ in range(20):
            began = time.perf_counter()
            await store.query(series.format(final=final, account=account))
            out.append(1000 * (time.perf_counter() - began))


async def run(bootstrap: str, n: int, work: Path, drains: int = 3, lag_rate: float = 2000.0,
              lag_seconds: float = 10.0, fill_rows: int = 3_000_000, api_calls: int = 300) -> MeteringResults:
    res = MeteringResults(fill_rows=fill_rows)
    settings = await fresh_topics(bootstrap)
    tag, base = uuid.uuid4().hex[:6], datetime.now(UTC) - timedelta(hours=1)
    began = time.perf_counter()
    await produce(bootstrap, settings.topic("usage.v1"),
                  [event(i, base + timedelta(milliseconds=i * 3_600_000 // n), tag) for i in range(n)])
    print(f"  {n:,} events produced to {settings.topic('usage.v1')} ({time.perf_counter() - began:.1f}s)",
          flush=True)
    store = ChdbStore(str(work / "chdb"))
    try:
        await migrate(store)
        for run_number in range(drains):
            last = run_number == drains - 1
            await drain(settings, store, res, n, f"metering.bench{run_number}",
                        lag_rate if last else 0.0, lag_seconds)
            print(f"  drain {run_number + 1}: {res.drains[-1].events_per_s:,.0f} events/s"
                  + (f"; lag measured at {lag_rate:,.0f} events/s" if last else ""), flush=True)
        await store.execute("TRUNCATE TABLE usage_raw")
        today = await fill_30_days(store, fill_rows)
        await idempotency_cost(store, res)
        await usage_api(store, res, today, api_calls)
    finally:
        await store.close()
    return res


def render(res: MeteringResults) -> str:
    def mark(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    final, proj = pct(res.final_ms, 50), pct(res.projection_ms, 50)
    drains = [
        f"  drain {i}: {d.events:,} events in {d.seconds:.2f} s = {d.events_per_s:,.0f} events/s after the "
        f"first batch (start-up to it {d.startup_s:.1f} s), {d.cpu_us_per_event:.1f} µs CPU/event "
        f"(metering process, chDB threads included), {d.batches} batches"
        for i, d in enumerate(res.drains, 1)
    ]
    return "\n".join([
        "Metering (usage.v1 -> the service's consumer -> chDB, one process; batch bounds as configured;",
        "each drain: the whole pre-produced topic, by a new consumer group, into an empty table):",
        *drains,
        f"  lag send -> queryable at {res.lag_rate:,.0f} events/s: p50 {pct(res.lag_ms, 50):.0f} ms, "
        f"p99 {pct(res.lag_ms, 99):.0f} ms ({len(res.lag_ms):,} events; batch time bound "
        f"{MeteringSettings(http_port=0).batch_max_wait_seconds:g} s)",
        f"  writer on a store of {res.fill_rows:,} rows (30 days): with the dedupe step "
        f"{res.dedupe_rows_per_s:,.0f} rows/s, without it {res.plain_rows_per_s:,.0f} rows/s "
        f"(ratio {res.dedupe_rows_per_s / max(res.plain_rows_per_s, 1e-9):.2f}); a redelivered batch of "
        f"{res.redeliver_rows:,} stored rows: {res.redeliver_ms:.0f} ms, 0 rows added",
        f"  30-day daily series by model in SQL, p50: one account: rollup projection {proj:.1f} ms, raw rows "
        f"with FINAL {final:.1f} ms (ratio {final / max(proj, 1e-9):.1f}); all accounts: projection "
        f"{pct(res.projection_all_ms, 50):.1f} ms, FINAL {pct(res.final_all_ms, 50):.1f} ms (ratio "
        f"{pct(res.final_all_ms, 50) / max(pct(res.projection_all_ms, 50), 1e-9):.1f})",
        f"  usage API over gRPC, 30-day daily series: one account p50 {pct(res.api_ms, 50):.1f} ms "
        f"p99 {pct(res.api_ms, 99):.1f} ms; admin, all accounts by model "
        f"p50 {pct(res.api_admin_ms, 50):.1f} ms "
        f"p99 {pct(res.api_admin_ms, 99):.1f} ms ({len(res.api_ms)} calls each)",
        "Targets:",
        f"  {mark(res.events_per_s >= TARGET_EVENTS_PER_S)}  events/s into chDB through the consumer >= "
        f"{TARGET_EVENTS_PER_S:,}: {res.events_per_s:,.0f} (median of {len(res.drains)} drains)",
    ])


def main(events: int, keep: bool) -> int:
    """Start a Kafka broker of its own, run the phases, print, stop it (by PID)."""
    run_dir = Path(tempfile.mkdtemp(prefix="tollgate-bench-metering-"))
    load1, load5, _ = os.getloadavg()
    print(f"Tollgate metering bench {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}: {os.cpu_count()} cores, "
          f"load average {load1:.2f} / {load5:.2f} before start", flush=True)
    kafka = KafkaServer(run_dir, free_port(), free_port())
    try:
        kafka.start()
        kafka.wait_ready()
        print(f"  Kafka ready at {kafka.bootstrap}", flush=True)
        res = asyncio.run(run(kafka.bootstrap, events, run_dir))
        print()
        print(render(res))
    finally:
        kafka.stop()
        if keep:
            print(f"run folder kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0
