"""Ledger fixtures: a pool on the session's real billing database and fresh accounts to post to."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest


@pytest.fixture
async def pool(billing_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(billing_dsn, min_size=1, max_size=12)
    assert created is not None
    yield created
    await created.close()


@pytest.fixture
def new_account(pool: asyncpg.Pool) -> Callable[..., Awaitable[str]]:
    async def create(billing: str = "prepaid") -> str:
        account_id = f"acct_led_{uuid.uuid4().hex[:10]}"
        await pool.execute("INSERT INTO accounts (id, name, billing) VALUES ($1, 'ledger test', $2)",
                           account_id, billing)
        return account_id

    return create


async def wallet_sum(pool: asyncpg.Pool, account_id: str) -> int:
    """The account's balance recomputed from the postings on its wallet book (the double-entry side)."""
    total: int = await pool.fetchval(
        "SELECT coalesce(sum(amount_micros), 0) FROM ledger_postings WHERE book = $1", f"wallet:{account_id}"
    )
    return total


async def balance(pool: asyncpg.Pool, account_id: str) -> int:
    value = await pool.fetchval("SELECT balance_micros FROM ledger_balances WHERE account_id = $1", account_id)
    return int(value or 0)
