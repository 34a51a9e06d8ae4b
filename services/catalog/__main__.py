"""``python -m services.catalog [serve|migrate|seed [FILE]]``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from services.catalog.seed import SEED_FILE, load_seed, seed
from services.catalog.settings import CatalogSettings
from services.common.kafka.producer import EventProducer
from services.common.logging import configure_logging
from services.common.pg_service import pg_service_cli
from services.common.settings import load_settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def _seed(settings: CatalogSettings, path: Path) -> None:
    entities = load_seed(path)
    producer = EventProducer(settings, client_id="catalog-seed")
    await producer.start()
    try:
        count = await seed(settings.database_url, producer, entities)
    finally:
        await producer.stop()
    print(f"catalog: seeded and published {count} entities from {path}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["seed"]:
        settings = load_settings(CatalogSettings)
        configure_logging("catalog", settings.log_level)
        asyncio.run(_seed(settings, Path(args[1]) if len(args) > 1 else SEED_FILE))
    else:
        pg_service_cli("catalog", CatalogSettings, MIGRATIONS, args)
