"""``python -m services.catalog [serve|migrate]``."""

from __future__ import annotations

import sys
from pathlib import Path

from services.catalog.settings import CatalogSettings
from services.common.pg_service import pg_service_cli

if __name__ == "__main__":
    pg_service_cli("catalog", CatalogSettings, Path(__file__).parent / "migrations", sys.argv[1:])
