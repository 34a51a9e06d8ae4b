"""``python -m services.catalog [serve | migrate | seed [FILE] | sync --source NAME [--file F | --url U]
[--dry-run]]``.

``seed`` and ``sync`` work on the database directly and publish what they changed themselves (through
the same outbox as the service), so they run with or without the service up.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from services.catalog.outbox import publish_pending
from services.catalog.seed import SEED_FILE, load_seed, seed
from services.catalog.service import main, sync_config
from services.catalog.settings import CatalogSettings, credential
from services.catalog.sync.runner import run_sync
from services.catalog.sync.sources import FORMATS, SyncSource
from services.common.kafka.producer import EventProducer
from services.common.lifecycle import run_service
from services.common.logging import configure_logging
from services.common.pg import create_pool
from services.common.pg_service import pg_service_cli
from services.common.settings import load_settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def _seed(settings: CatalogSettings, path: Path) -> None:
    records = load_seed(path)
    producer = EventProducer(settings, client_id="catalog-seed")
    await producer.start()
    try:
        changed = await seed(settings.database_url, producer, records)
    finally:
        await producer.stop()
    print(f"catalog: seeded {len(records)} entities from {path} ({changed} changed); published the catalog")


def _source(settings: CatalogSettings, args: argparse.Namespace) -> SyncSource:
    """A declared source (optionally read from another place), or an ad-hoc one named by its format."""
    declared = {s.name: s for s in settings.sync_sources}
    file = Path(args.file) if args.file else None
    if args.source in declared:
        return declared[args.source].at(url=args.url, file=file)
    if args.source in FORMATS and (file or args.url):
        return SyncSource(name=args.source, format=args.source, url=args.url, file=file)
    known = ", ".join([*declared, *(f"{f} (with --file or --url)" for f in FORMATS)])
    raise SystemExit(f"catalog sync: unknown source {args.source!r}; use one of: {known}")


async def _sync(settings: CatalogSettings, source: SyncSource, dry_run: bool) -> int:
    pool = await create_pool(settings.database_url, 2)
    try:
        report = await run_sync(pool, source, sync_config(settings), "cli", dry_run=dry_run,
                                api_key=credential(source.credentials_env))
        if report.applied or report.held:
            producer = EventProducer(settings, client_id="catalog-sync")
            await producer.start()
            try:
                async with pool.acquire() as conn:
                    await publish_pending(conn, producer)
            finally:
                await producer.stop()
    finally:
        await pool.close()
    print(report.model_dump_json(indent=2))
    return 0 if report.status != "failed" else 1


def _sync_cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.catalog sync")
    parser.add_argument("--source", required=True, help="a CATALOG_SYNC_SOURCES name, or a format")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--file", help="read the feed from this file")
    where.add_argument("--url", help="fetch the feed from this URL")
    parser.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")
    args = parser.parse_args(argv)
    settings = load_settings(CatalogSettings)
    configure_logging("catalog", settings.log_level)
    raise SystemExit(asyncio.run(_sync(settings, _source(settings, args), args.dry_run)))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["seed"]:
        settings = load_settings(CatalogSettings)
        configure_logging("catalog", settings.log_level)
        asyncio.run(_seed(settings, Path(args[1]) if len(args) > 1 else SEED_FILE))
    elif args[:1] == ["sync"]:
        _sync_cli(args[1:])
    elif args[:1] in ([], ["serve"]):
        settings = load_settings(CatalogSettings)
        run_service("catalog", settings, lambda stop: main(settings, stop))
    else:  # migrate (and its usage message)
        pg_service_cli("catalog", CatalogSettings, MIGRATIONS, args)
