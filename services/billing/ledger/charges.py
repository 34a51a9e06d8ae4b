"""Per-request charges of prepaid accounts, from usage.v1 (consumer group ``billing.charges``).

Each usage event is priced exactly as metering prices it — ``services.common.pricing.cost_micros`` at
the price version the edge admitted the request under — so the ledger's charges and metering's
rollups agree to the micro-dollar. A charge's idempotency key is ``charge:<request id>``: a
redelivered batch, a second replica or a replay of the whole topic posts each request once, which is
what makes "ledger sum == balance after a replay of all usage" hold.

Only prepaid accounts are charged (subscription and invoice accounts are billed from statements).
Every event of a prepaid account — free ones included — releases the edge's hold for its request,
together with the new balance, in one Redis script (``Wallets.apply``).

An event naming a price version billing has not seen yet fails the batch (the consumer rewinds and
retries) until ``price_wait_seconds`` have passed since it was first missed; then it is dead-lettered,
like any event that is not a valid usage.v1 record.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog
from pydantic import ValidationError

from services.billing.ledger.entries import Entry, post
from services.billing.ledger.wallets import Wallets, mark_mirrored
from services.common.events.catalog import PriceEntry
from services.common.events.usage import UsageEventV1
from services.common.kafka.batch_consumer import DeadLetter, ProcessResult, Record
from services.common.price_book import PriceNotYetKnown, PriceWait
from services.common.pricing import TokenCounts, cost_micros

log = structlog.get_logger(__name__)
GROUP_ID = "billing.charges"


@dataclass(frozen=True)
class Charge:
    request_id: str
    account_id: str
    cost_micros: int
    started_at: datetime
    model: str


class ChargeProcessor:
    def __init__(
        self, prices: Mapping[str, PriceEntry], wait_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prices = prices
        self._price_wait = PriceWait(wait_seconds, clock)

    def _price(self, version: str | None) -> PriceEntry | None:
        """The entry named by ``version``; raises PriceNotYetKnown (retry) or LookupError (give up)."""
        if version is None:
            return None
        price = self._prices.get(version)
        if price is not None:
            return price
        if not self._price_wait.give_up_on(version):
            raise PriceNotYetKnown(version)
        raise LookupError(version)

    def __call__(self, records: Sequence[Record]) -> ProcessResult[Charge]:
        result: ProcessResult[Charge] = ProcessResult()
        for record in records:
            try:
                event = UsageEventV1.from_bytes(record.value or b"")
            except ValidationError as exc:
                result.dead_letters.append(DeadLetter(record, f"schema: {exc.error_count()} error(s)"))
                continue
            try:
                price = self._price(event.price_version)
            except LookupError:
                result.dead_letters.append(DeadLetter(
                    record, f"unknown_price_version: '{event.price_version}' is not in catalog.v1"))
                continue
            t = event.tokens
            cost = cost_micros(price, TokenCounts(t.input, t.cached_input, t.cache_write, t.output),
                               batch=event.batch)
            result.rows.append(Charge(event.request_id, event.account_id, cost, event.started_at,
                                      event.model_requested))
        return result


class ChargeWriter:
    """Posts a batch's charges, one database transaction per account, then updates its wallet."""

    def __init__(self, pool: asyncpg.Pool, wallets: Wallets) -> None:
        self._pool = pool
        self._wallets = wallets

    async def write(self, rows: Sequence[Charge]) -> None:
        if not rows:
            return
        by_account: dict[str, list[Charge]] = defaultdict(list)
        for charge in rows:
            by_account[charge.account_id].append(charge)
        async with self._pool.acquire() as conn:
            prepaid = {r["id"] for r in await conn.fetch(
                "SELECT id FROM accounts WHERE id = ANY($1::text[]) AND billing = 'prepaid'", list(by_account)
            )}
        for account_id in sorted(prepaid):
            await self._charge_account(account_id, by_account[account_id])

    async def _charge_account(self, account_id: str, charges: list[Charge]) -> None:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                posted = 0
                for charge in charges:
                    if charge.cost_micros > 0:
                        done = await post(conn, Entry(
                            account_id=account_id, kind="charge", amount_micros=-charge.cost_micros,
                            idempotency_key=f"charge:{charge.request_id}", reference=charge.request_id,
                            reason=charge.model, occurred_at=charge.started_at,
                        ))
                        posted += done.created
                balance = await conn.fetchrow(
                    "SELECT balance_micros, version FROM ledger_balances WHERE account_id = $1", account_id
                )
            bal, version = (balance["balance_micros"], balance["version"]) if balance else (0, 0)
            await self._wallets.apply(account_id, bal, version, [c.request_id for c in charges])
            await mark_mirrored(conn, account_id, version)
        log.debug("charges_posted", account_id=account_id, events=len(charges), posted=posted)
