"""The credit ledger: double-entry, append-only, integer micro-USD, idempotent entries; prepaid
balances mirrored into Redis for the edges' admission; charges from usage.v1; grant expiry."""

from services.billing.ledger.entries import (
    Entry,
    IdempotencyConflict,
    InsufficientBalance,
    Kind,
    Posted,
    post,
)

__all__ = ["Entry", "IdempotencyConflict", "InsufficientBalance", "Kind", "Posted", "post"]
