"""Prepaid balances mirrored into Redis, where every edge's admission script reads them.

The ledger in PostgreSQL is the truth; Redis holds what admission needs in one round trip: the
balance (with the ledger's per-account version, so a stale write never overwrites a newer one) and
the edges' holds on it (requests in flight, or finished and not yet charged). Three paths write:

* the charge consumer, right after its charges commit: balance + the holds those charges replace;
* ``Mirror.run``: every balance the ledger has that Redis has not seen (``version > mirrored_version``:
  a credit from the API or a webhook, or a charge whose Redis write was lost) — the same outbox
  pattern as keys.v1 — and, less often, every prepaid balance, so a Redis that lost its data is
  refilled;
* the hold sweep: holds of requests already charged (a lost Redis write) or that outlived
  ``hold_ttl`` without a charge (an edge died before its usage event was written) are released.

A prepaid account whose wallet Redis does not have is treated by admission as holding nothing: the
failure mode of every gap here is refusing a request, never serving one unpaid.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

from services.billing.db import Conn
from services.common import redis_keys

log = structlog.get_logger(__name__)

_UNMIRRORED = """
SELECT b.account_id, b.balance_micros, b.version FROM ledger_balances b
WHERE b.version > b.mirrored_version LIMIT 1000
"""
_PREPAID = """
SELECT a.id AS account_id, coalesce(b.balance_micros, 0) AS balance_micros, coalesce(b.version, 0) AS version
FROM accounts a LEFT JOIN ledger_balances b ON b.account_id = a.id WHERE a.billing = 'prepaid'
"""
_MARK = """
UPDATE ledger_balances SET mirrored_version = greatest(mirrored_version, $2) WHERE account_id = $1
"""


class Wallets:
    """Writes to the wallets in Redis (all of billing's Redis I/O)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._apply = client.register_script((Path(__file__).parent / "apply_wallet.lua").read_text())

    async def apply(self, account_id: str, balance: int, version: int, charged: Sequence[str] = ()) -> int:
        """Write ``balance`` at ``version`` (if newer) and release the holds of ``charged`` requests."""
        keys = [redis_keys.wallet(self._prefix, account_id), redis_keys.holds(self._prefix, account_id)]
        released: int = await self._apply(keys=keys, args=[balance, version, *charged])
        return released

    async def holds(self, account_id: str) -> dict[str, int]:
        raw = await self._redis.hgetall(redis_keys.holds(self._prefix, account_id))
        return {k.decode() if isinstance(k, bytes) else str(k): int(v) for k, v in raw.items()}

    async def read(self, account_id: str) -> tuple[int, int, int] | None:
        """(balance, version, pending) as the edges see them; None when the wallet is not there."""
        balance, version, pending = await self._redis.hmget(
            redis_keys.wallet(self._prefix, account_id), ["balance", "version", "pending"]
        )
        if balance is None:
            return None
        return int(balance), int(version or 0), int(pending or 0)


async def mark_mirrored(conn: Conn, account_id: str, version: int) -> None:
    await conn.execute(_MARK, account_id, version)


class Mirror:
    """The loop that keeps Redis's balances equal to the ledger's (see the module docstring)."""

    def __init__(
        self, pool: asyncpg.Pool, wallets: Wallets, interval: float, full_every: float, hold_ttl: float
    ) -> None:
        self._pool = pool
        self._wallets = wallets
        self._interval = interval
        self._full_every = full_every
        self._hold_ttl = hold_ttl
        self._kick = asyncio.Event()
        self._last_full = 0.0
        self._first_seen: dict[tuple[str, str], float] = {}

    def kick(self) -> None:
        """Run a pass now (after a credit commits), rather than at the next tick."""
        self._kick.set()

    async def changed(self) -> int:
        """Write every balance the ledger changed since it was last mirrored."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_UNMIRRORED)
            for row in rows:
                await self._wallets.apply(row["account_id"], row["balance_micros"], row["version"])
                await mark_mirrored(conn, row["account_id"], row["version"])
        return len(rows)

    async def everything(self) -> int:
        """Write every prepaid balance and sweep every prepaid account's holds."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_PREPAID)
        released = 0
        seen: set[tuple[str, str]] = set()
        for row in rows:
            account_id = row["account_id"]
            await self._wallets.apply(account_id, row["balance_micros"], row["version"])
            released += await self._sweep_holds(account_id, seen)
        self._first_seen = {k: v for k, v in self._first_seen.items() if k in seen}
        return released

    async def _sweep_holds(self, account_id: str, seen: set[tuple[str, str]]) -> int:
        holds = await self._wallets.holds(account_id)
        if not holds:
            return 0
        async with self._pool.acquire() as conn:
            charged = await conn.fetch(
                "SELECT reference FROM ledger_transactions WHERE idempotency_key = ANY($1::text[])",
                [f"charge:{request_id}" for request_id in holds],
            )
            balance = await conn.fetchrow(
                "SELECT balance_micros, version FROM ledger_balances WHERE account_id = $1", account_id
            )
        done = {r["reference"] for r in charged}
        now = time.monotonic()
        for request_id in holds:
            first = self._first_seen.setdefault((account_id, request_id), now)
            seen.add((account_id, request_id))
            if now - first >= self._hold_ttl:
                done.add(request_id)
        if not done:
            return 0
        bal, version = (balance["balance_micros"], balance["version"]) if balance else (0, 0)
        released = await self._wallets.apply(account_id, bal, version, sorted(done))
        log.info("wallet_holds_released", account_id=account_id, holds=len(done), micros=released)
        return released

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if time.monotonic() - self._last_full >= self._full_every:
                    await self.everything()
                    self._last_full = time.monotonic()
                await self.changed()
            except (RedisError, asyncpg.PostgresError, OSError) as exc:
                log.warning("wallet_mirror_failed", error=type(exc).__name__)
            self._kick.clear()
            kicked, stopping = asyncio.create_task(self._kick.wait()), asyncio.create_task(stop.wait())
            await asyncio.wait(
                {kicked, stopping}, timeout=self._interval, return_when=asyncio.FIRST_COMPLETED
            )
            kicked.cancel()
            stopping.cancel()
