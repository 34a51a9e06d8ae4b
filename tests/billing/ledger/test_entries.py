"""The ledger's rules, against the real billing database: idempotent posts, the balance equal to the
ledger's sum, double entry enforced by the database, append-only, overdraft only for charges, and
expiring grants drawn first and withdrawn at expiry."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.billing.ledger import Entry, IdempotencyConflict, InsufficientBalance, post
from services.billing.ledger.expiry import expire_grants
from tests.billing.ledger.conftest import balance, wallet_sum

NewAccount = Callable[..., Awaitable[str]]


async def _post(pool: asyncpg.Pool, entry: Entry) -> object:
    async with pool.acquire() as conn, conn.transaction():
        return await post(conn, entry)


async def test_the_same_idempotency_key_posts_once_even_when_sent_concurrently(
    pool: asyncpg.Pool, new_account: NewAccount
) -> None:
    account = await new_account()
    entry = Entry(account, "topup", 5_000_000, f"topup:pi_{account}", reference="pi_x")
    results = await asyncio.gather(*(_post(pool, entry) for _ in range(8)))
    assert sum(1 for r in results if getattr(r, "created")) == 1
    assert await balance(pool, account) == 5_000_000
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE account_id = $1", account) == 1


async def test_a_reused_key_for_a_different_entry_is_a_conflict_and_changes_nothing(
    pool: asyncpg.Pool, new_account: NewAccount
) -> None:
    account = await new_account()
    await _post(pool, Entry(account, "grant", 1_000_000, f"k:{account}"))
    with pytest.raises(IdempotencyConflict):
        await _post(pool, Entry(account, "grant", 2_000_000, f"k:{account}"))
    assert await balance(pool, account) == 1_000_000


async def test_balance_equals_the_ledger_sum_after_a_random_mix_of_concurrent_entries(
    pool: asyncpg.Pool, new_account: NewAccount
) -> None:
    account = await new_account()
    rng = random.Random(7)
    entries = []
    for i in range(120):
        kind = rng.choice(["topup", "grant", "charge", "charge", "charge", "adjustment"])
        amount = rng.randint(1, 50_000)
        signed = -amount if kind == "charge" or (kind == "adjustment" and rng.random() < 0.3) else amount
        entries.append(Entry(account, kind, signed, f"mix:{account}:{i}"))  # type: ignore[arg-type]
    outcomes = await asyncio.gather(*(_post(pool, e) for e in entries), return_exceptions=True)
    assert all(not isinstance(o, Exception) or isinstance(o, InsufficientBalance) for o in outcomes)
    posted = await pool.fetchval(
        "SELECT coalesce(sum(amount_micros), 0) FROM ledger_transactions WHERE account_id = $1", account
    )
    assert await balance(pool, account) == posted == await wallet_sum(pool, account)
    seqs = [r["seq"] for r in await pool.fetch(
        "SELECT seq FROM ledger_transactions WHERE account_id = $1 ORDER BY seq", account)]
    assert seqs == list(range(1, len(seqs) + 1))  # gap-free per-account order
    # each transaction's balance_after is the running sum in that order
    running = 0
    for row in await pool.fetch(
        "SELECT amount_micros, balance_after_micros FROM ledger_transactions WHERE account_id = $1 ORDER BY seq",
        account,
    ):
        running += row["amount_micros"]
        assert row["balance_after_micros"] == running
    unbalanced = await pool.fetchval(
        "SELECT count(*) FROM (SELECT transaction_id FROM ledger_postings GROUP BY transaction_id "
        "HAVING sum(amount_micros) <> 0) t"
    )
    assert unbalanced == 0


async def test_the_database_refuses_an_unbalanced_transaction_and_any_edit(
    pool: asyncpg.Pool, new_account: NewAccount
) -> None:
    account = await new_account()
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="does not balance"):
            async with conn.transaction():
                tx = await conn.fetchval(
                    "INSERT INTO ledger_transactions (account_id, seq, kind, amount_micros, balance_after_micros, "
                    "idempotency_key, occurred_at) VALUES ($1, 1, 'grant', 10, 10, $2, now()) RETURNING id",
                    account, f"raw:{account}",
                )
                await conn.execute(
                    "INSERT INTO ledger_postings VALUES ($1, $2, 10), ($1, 'grants', -9)", tx, f"wallet:{account}"
                )
        await _post(pool, Entry(account, "grant", 10, f"ok:{account}"))
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE ledger_transactions SET amount_micros = 99 WHERE account_id = $1", account)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM ledger_postings WHERE book = $1", f"wallet:{account}")
    assert await balance(pool, account) == 10 == await wallet_sum(pool, account)


async def test_only_a_charge_may_overdraw(pool: asyncpg.Pool, new_account: NewAccount) -> None:
    account = await new_account()
    await _post(pool, Entry(account, "topup", 100, f"t:{account}"))
    with pytest.raises(InsufficientBalance):
        await _post(pool, Entry(account, "adjustment", -101, f"a:{account}"))
    with pytest.raises(InsufficientBalance):
        await _post(pool, Entry(account, "refund", -101, f"r:{account}"))
    await _post(pool, Entry(account, "charge", -150, f"c:{account}"))
    assert await balance(pool, account) == -50


async def test_charges_draw_on_the_soonest_expiring_grant_and_expiry_withdraws_only_what_is_left(
    pool: asyncpg.Pool, new_account: NewAccount
) -> None:
    account = await new_account()
    now = datetime.now(UTC)
    await _post(pool, Entry(account, "topup", 1_000, f"t:{account}"))
    await _post(pool, Entry(account, "grant", 500, f"g-late:{account}", expires_at=now + timedelta(days=30)))
    await _post(pool, Entry(account, "grant", 300, f"g-soon:{account}", expires_at=now + timedelta(hours=1)))
    await _post(pool, Entry(account, "charge", -400, f"c:{account}"))  # 300 from g-soon, 100 from g-late
    assert await balance(pool, account) == 1_400
    closed = await expire_grants(pool, now + timedelta(days=1))
    assert closed >= 1
    assert await balance(pool, account) == 1_400  # g-soon was spent: nothing left to withdraw
    await expire_grants(pool, now + timedelta(days=31))
    assert await balance(pool, account) == 1_000  # g-late's remaining 400 withdrawn
    assert await expire_grants(pool, now + timedelta(days=31)) == 0  # once only
    kinds = [r["kind"] for r in await pool.fetch(
        "SELECT kind FROM ledger_transactions WHERE account_id = $1 ORDER BY seq", account)]
    assert kinds == ["topup", "grant", "grant", "charge", "expiry"]
    assert await balance(pool, account) == await wallet_sum(pool, account)
