"""``python -m services.<name> migrate`` for the services that own a PostgreSQL database (billing,
catalog): apply the numbered migrations, creating the database on first use. Each service's ``serve``
is its own (``services/<name>/service.py``); this is only the shared command line of ``migrate``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol, TypeVar

from services.common.logging import configure_logging
from services.common.pg_migrate import migrate
from services.common.settings import ServiceSettings, load_settings


class PgSettings(Protocol):
    database_url: str


S = TypeVar("S", bound=ServiceSettings)


def pg_service_cli(name: str, settings_cls: type[S], migrations: Path, argv: list[str]) -> None:
    command = argv[0] if argv else ""
    if command != "migrate" or len(argv) != 1:
        raise SystemExit(f"usage: python -m services.{name} [serve|migrate|...] (got {' '.join(argv)!r})")
    settings = load_settings(settings_cls)
    db: PgSettings = settings  # type: ignore[assignment]
    configure_logging(name, settings.log_level)
    asyncio.run(migrate(db.database_url, migrations, create_database=True))
