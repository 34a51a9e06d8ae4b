"""The shape shared by the services that own a PostgreSQL database (billing, catalog):
``serve`` runs the pool + Kafka producer + ops endpoints; ``migrate`` applies numbered migrations.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol, TypeVar

from services.common.kafka.producer import EventProducer
from services.common.lifecycle import run_service, serve_http
from services.common.logging import configure_logging
from services.common.ops import ops_app
from services.common.pg import create_pool, pg_ready
from services.common.pg_migrate import migrate
from services.common.retry import keep_trying
from services.common.settings import ServiceSettings, load_settings


class PgSettings(Protocol):
    database_url: str
    db_pool_size: int


S = TypeVar("S", bound=ServiceSettings)


async def serve_pg_service(
    name: str, settings: ServiceSettings, db: PgSettings, stop: asyncio.Event
) -> None:
    pool = await create_pool(db.database_url, db.db_pool_size)
    producer = EventProducer(settings, client_id=name)
    connecting = asyncio.create_task(keep_trying(producer.start, "kafka", stop))

    async def kafka_ready() -> bool:
        return producer.started and await producer.ping()

    app = ops_app(name, {"postgres": lambda: pg_ready(pool), "kafka": kafka_ready})
    try:
        await serve_http(app, settings.http_host, settings.http_port, stop, settings.shutdown_grace_seconds)
    finally:
        await connecting
        await producer.stop()
        await pool.close()


def pg_service_cli(
    name: str, settings_cls: type[S], migrations: Path, argv: list[str]
) -> None:
    settings = load_settings(settings_cls)
    db: PgSettings = settings  # type: ignore[assignment]
    command = argv[0] if argv else "serve"
    if command == "migrate":
        configure_logging(name, settings.log_level)
        asyncio.run(migrate(db.database_url, migrations, create_database=True))
    elif command == "serve":
        run_service(name, settings, lambda stop: serve_pg_service(name, settings, db, stop))
    else:
        raise SystemExit(f"usage: python -m services.{name} [serve|migrate] (got {command!r})")
