"""The PostgreSQL pool of a service that owns a database (billing, catalog).

``min_size=0`` so the service starts while PostgreSQL is down; readiness asks the database itself.
"""

from __future__ import annotations

import asyncpg


async def create_pool(dsn: str, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=max_size, command_timeout=10)
    assert pool is not None
    return pool


async def pg_ready(pool: asyncpg.Pool) -> bool:
    async with pool.acquire(timeout=2) as conn:
        return bool(await conn.fetchval("SELECT 1") == 1)
