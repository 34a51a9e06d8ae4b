"""A succeeded PaymentIntent becomes exactly one ledger ``topup`` entry.

Two paths may see the same PaymentIntent succeed — its ``payment_intent.succeeded`` webhook and
reconciliation — and either may run twice. The ledger's idempotency key ``topup:<pi id>`` makes the
second post a no-op (``Posted.created`` is False), and our row's ``credited`` flag moves in the same
transaction, so whichever path comes first credits and the other finds it done.

Only PaymentIntents that billing created as top-ups are credited (our row, or ``metadata.tollgate_kind
== "topup"``): the PaymentIntents Stripe creates to pay subscription invoices are not credit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from services.billing.db import Conn
from services.billing.ledger import Entry, post
from services.billing.stripe import store

log = structlog.get_logger(__name__)
MICROS_PER_CENT = 10_000
TOPUP_KIND = "topup"


@dataclass(frozen=True)
class Credit:
    outcome: str  # credited | already_credited | not_succeeded | not_a_topup | unknown_account
    account_id: str | None = None
    amount_micros: int = 0


def received_cents(pi: dict[str, Any]) -> int:
    """What Stripe actually received: ``amount_received`` (localstripe omits it: then ``amount``)."""
    received = pi.get("amount_received")
    return int(received if received is not None else pi.get("amount") or 0)


async def credit_payment_intent(conn: Conn, pi: dict[str, Any]) -> Credit:
    """Credit ``pi`` (Stripe's object, as Stripe holds it now) if it succeeded. Run in a transaction."""
    pi_id = str(pi["id"])
    row = await store.get_payment_intent(conn, pi_id, lock=True)
    metadata = pi.get("metadata") or {}
    if row is None and metadata.get("tollgate_kind") != TOPUP_KIND:
        return Credit("not_a_topup")
    account_id = str(row["account_id"]) if row is not None else str(metadata.get("account_id", ""))
    if row is None:  # created by us (metadata says so) but our row was lost: trust only a known customer
        if await store.account_of_customer(conn, str(pi.get("customer") or "")) != account_id:
            log.warning("topup_unknown_account", payment_intent=pi_id)
            return Credit("unknown_account")
        await store.insert_payment_intent(conn, pi_id, account_id, int(pi["amount"]),
                                          str(pi.get("currency") or "usd"), str(pi["status"]), "")
    status = str(pi["status"])
    if status != "succeeded":
        await store.mark_payment_intent(conn, pi_id, status, credited=False)
        return Credit("not_succeeded", account_id)
    amount = received_cents(pi) * MICROS_PER_CENT
    posted = await post(conn, Entry(
        account_id=account_id, kind="topup", amount_micros=amount, idempotency_key=f"topup:{pi_id}",
        reason="Stripe top-up", reference=pi_id,
    ))
    await store.mark_payment_intent(conn, pi_id, status, credited=True)
    if posted.created:
        log.info("topup_credited", payment_intent=pi_id, account_id=account_id, amount_micros=amount)
    return Credit("credited" if posted.created else "already_credited", account_id, amount)
