"""``python -m services.billing bootstrap OUT_FILE``: a demo account, plan and key for ``make run``.

Idempotent: the first run creates them and the CLI writes the key's secret to OUT_FILE (mode 0600) —
the only place it ever exists, since billing stores just its keyed hash; later runs leave the rows alone and
re-publish the key's state on keys.v1 (through the outbox's lock protocol, so a running billing
service publishing the same key cannot interleave with it). The management API builds on the same
tables and the same publisher.
"""

from __future__ import annotations

import asyncpg

from services.billing.outbox import republish
from services.common.api_keys import display_prefix, generate_key, hash_key
from services.common.kafka.producer import EventProducer

DEMO_ACCOUNT, DEMO_PLAN, DEMO_KEY = "acct_demo", "plan_demo", "key_demo"


async def bootstrap(dsn: str, producer: EventProducer, hash_secret: str, have_secret: bool) -> str | None:
    """Ensure the demo rows exist; return a new key's secret (None when the existing key was kept).

    ``have_secret`` says whether the caller still holds the demo key's secret; if not, the key is
    re-issued (a new secret, the old one stops working), since a hash cannot give the secret back.
    """
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO accounts (id, name) VALUES ($1, 'Demo account') ON CONFLICT (id) DO NOTHING",
                DEMO_ACCOUNT,
            )
            await conn.execute(
                "INSERT INTO plans (id, name, requests_per_minute, tokens_per_minute, max_concurrency)"
                " VALUES ($1, 'Demo plan', 600, 200000, 16) ON CONFLICT (id) DO NOTHING",
                DEMO_PLAN,
            )
            exists = await conn.fetchval("SELECT 1 FROM api_keys WHERE id = $1", DEMO_KEY)
            secret: str | None = None
            if not exists or not have_secret:
                secret = generate_key()
                digest = bytes.fromhex(hash_key(secret, hash_secret))
                await conn.execute(
                    "INSERT INTO api_keys (id, account_id, plan_id, name, key_hash, prefix)"
                    " VALUES ($1, $2, $3, 'demo key', $4, $5)"
                    " ON CONFLICT (id) DO UPDATE SET key_hash = EXCLUDED.key_hash, prefix = EXCLUDED.prefix,"
                    " version = api_keys.version + 1, state_version = nextval('key_state_seq'),"
                    " updated_at = now()",
                    DEMO_KEY, DEMO_ACCOUNT, DEMO_PLAN, digest, display_prefix(secret),
                )
        await republish(conn, producer, [DEMO_KEY])
    finally:
        await conn.close()
    return secret
