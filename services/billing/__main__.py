"""``python -m services.billing [serve|migrate|bootstrap OUT_FILE]``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from services.billing.bootstrap import bootstrap
from services.billing.service import main
from services.billing.settings import BillingSettings
from services.common.kafka.producer import EventProducer
from services.common.lifecycle import run_service
from services.common.logging import configure_logging
from services.common.pg_service import pg_service_cli
from services.common.settings import load_settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def _bootstrap(settings: BillingSettings, have_secret: bool) -> str | None:
    producer = EventProducer(settings, client_id="billing-bootstrap")
    await producer.start()
    try:
        return await bootstrap(
            settings.database_url, producer, settings.key_hash_secret.get_secret_value(), have_secret
        )
    finally:
        await producer.stop()


def _write_secret(out_file: Path, secret: str) -> None:
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.touch(mode=0o600)
    out_file.write_text(secret + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["bootstrap"]:
        if len(args) != 2:
            raise SystemExit("usage: python -m services.billing bootstrap OUT_FILE")
        settings = load_settings(BillingSettings)
        configure_logging("billing", settings.log_level)
        out_file = Path(args[1])
        secret = asyncio.run(_bootstrap(settings, out_file.exists()))
        if secret is not None:
            _write_secret(out_file, secret)
        print(f"billing: demo key {'created in' if secret else 'kept; secret in'} {out_file}")
    elif args[:1] in ([], ["serve"]):
        settings = load_settings(BillingSettings)
        run_service("billing", settings, lambda stop: main(settings, stop))
    else:  # migrate (and its usage message)
        pg_service_cli("billing", BillingSettings, MIGRATIONS, args)
