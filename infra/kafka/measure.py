"""Measure what a broker costs on this machine: start time, memory, stop time.

Numbers in docs and test timeouts should come from here, not from memory. Each run uses a fresh temp
run dir and free ports, and stops everything it started (by PID) even when a step fails.

    .venv/bin/python infra/kafka/measure.py                    # Kafka, jars from the cache
    .venv/bin/python infra/kafka/measure.py --cold             # + jar fetch from Maven Central
    .venv/bin/python infra/kafka/measure.py --jvm "-Xmx512m -XX:+UseG1GC"   # compare JVM flags
    .venv/bin/python infra/kafka/measure.py --broker tansu
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runnable as a plain script

from infra.stack import kafka
from infra.stack.ports import free_port
from infra.stack.tansu import TansuServer
from infra.stack.topics import ensure_topics

Row = tuple[str, str]


def timed(rows: list[Row], label: str, step: Callable[[], object]) -> None:
    t0 = time.monotonic()
    step()
    rows.append((label, f"{time.monotonic() - t0:.2f} s"))


def up(server: kafka.KafkaServer | TansuServer) -> None:
    server.start()
    server.wait_ready(120)


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def measure_kafka(run_dir: Path, cold: bool) -> list[Row]:
    rows: list[Row] = [("kafka version", kafka.kafka_version()), ("JVM flags", " ".join(kafka.JVM_FLAGS))]
    if cold:
        # empty jar cache AND empty Maven local repo: what a fresh machine pays (network included)
        os.environ["TOLLGATE_CACHE"] = str(run_dir / "cache")
        os.environ["MAVEN_OPTS"] = f"{os.environ.get('MAVEN_OPTS', '')} -Dmaven.repo.local={run_dir / 'm2'}"
        timed(rows, "jar fetch (cold: empty cache and ~/.m2)", kafka.KafkaServer.ensure_jars)
    else:
        timed(rows, "jar check (warm cache)", kafka.KafkaServer.ensure_jars)
    server = kafka.KafkaServer(run_dir, free_port(), free_port())
    try:
        timed(rows, "storage format", server.format_storage)
        timed(rows, "start -> ready", lambda: up(server))
        rows.append(("RSS after ready", mib(server.rss())))
        timed(rows, "ensure_topics (7 topics)", lambda: asyncio.run(ensure_topics(server.bootstrap)))
        rows.append(("RSS after topics", mib(server.rss())))
        timed(rows, "stop (SIGTERM, controlled)", server.stop)
        restarted = kafka.KafkaServer(run_dir, free_port(), free_port())
        timed(rows, "restart -> ready (same data)", lambda: up(restarted))
        timed(rows, "stop again", restarted.stop)
    finally:
        server.stop()
    return rows


def measure_tansu(run_dir: Path) -> list[Row]:
    rows: list[Row] = []
    server = TansuServer(run_dir, free_port())
    try:
        timed(rows, "start -> ready", lambda: up(server))
        rows.append(("RSS after ready", mib(server.rss())))
        timed(rows, "ensure_topics (7 topics)", lambda: asyncio.run(ensure_topics(server.bootstrap)))
        rows.append(("RSS after topics", mib(server.rss())))
        timed(rows, "stop (SIGTERM)", server.stop)
    finally:
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--broker", choices=["kafka", "tansu"], default="kafka")
    parser.add_argument("--cold", action="store_true", help="fetch the jars into an empty temp cache")
    parser.add_argument("--jvm", help="replace the broker's JVM flags for this run (quoted string)")
    args = parser.parse_args()
    if args.jvm:
        kafka.JVM_FLAGS = tuple(shlex.split(args.jvm))
    run_dir = Path(tempfile.mkdtemp(prefix="tollgate-measure-"))
    try:
        rows = measure_tansu(run_dir) if args.broker == "tansu" else measure_kafka(run_dir, args.cold)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    width = max(len(label) for label, _ in rows)
    print(f"{args.broker} on {os.cpu_count()} cores")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


if __name__ == "__main__":
    main()
