"""``python -m services.billing [serve|migrate]``."""

from __future__ import annotations

import sys
from pathlib import Path

from services.billing.settings import BillingSettings
from services.common.pg_service import pg_service_cli

if __name__ == "__main__":
    pg_service_cli("billing", BillingSettings, Path(__file__).parent / "migrations", sys.argv[1:])
