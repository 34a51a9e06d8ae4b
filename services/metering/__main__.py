"""``python -m services.metering [serve|migrate]``."""

from __future__ import annotations

import asyncio
import sys

from services.common.lifecycle import run_service
from services.common.logging import configure_logging
from services.common.settings import load_settings
from services.metering.migrate import migrate
from services.metering.service import main
from services.metering.settings import MeteringSettings
from services.metering.store.open import open_store


async def _migrate(settings: MeteringSettings) -> None:
    store = await open_store(settings)
    try:
        await migrate(store)
    finally:
        await store.close()


def cli(argv: list[str]) -> None:
    settings = load_settings(MeteringSettings)
    command = argv[0] if argv else "serve"
    if command == "migrate":
        configure_logging("metering", settings.log_level)
        asyncio.run(_migrate(settings))
    elif command == "serve":
        run_service("metering", settings, lambda stop: main(settings, stop))
    else:
        raise SystemExit(f"usage: python -m services.metering [serve|migrate] (got {command!r})")


if __name__ == "__main__":
    cli(sys.argv[1:])
