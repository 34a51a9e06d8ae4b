"""What billing's handlers are given besides the caller and the request (``services.common.manage``):
the database, the keys.v1 outbox to flush after a commit, the secret that hashes new keys, and
Stripe (its gateway is None when no API key is configured)."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from services.billing.ledger.wallets import Mirror, Wallets
from services.billing.statements.context import StatementsDeps
from services.billing.stripe.client import StripeBilling
from services.common.outbox import Flusher


@dataclass(frozen=True)
class Deps:
    pool: asyncpg.Pool
    outbox: Flusher
    key_hash_secret: str = field(repr=False)
    flush_timeout: float = 2.0
    wallets: Wallets | None = None  # Redis: what the edges see of prepaid balances (None: not wired)
    mirror: Mirror | None = None  # kicked after a credit commits, so edges see it at once
    stripe: StripeBilling = field(default_factory=StripeBilling)  # no API key: Stripe routes answer 503
    statements: StatementsDeps | None = None  # metering's usage API for statements (None: they answer 503)
