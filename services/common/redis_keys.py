"""Names of the Redis keys the edges and billing share, in one place.

Every key of an account carries the account id as its Redis Cluster hash tag, so an API key's own
counters (requests, tokens, leases, budget) and its account's prepaid wallet live in one slot, and the
admission script can check and reserve all of them atomically in one round trip.

The wallet is a hash: ``balance`` and ``version`` (the ledger's balance of the account and the
per-account sequence number of the transaction it reflects, written by billing), and ``pending`` (the
sum of the holds). ``holds`` is a hash request id → micro-USD the edges have reserved or settled for a
request that billing has not charged yet.
"""

from __future__ import annotations


def account_base(prefix: str, account_id: str) -> str:
    return f"{prefix}:{{{account_id}}}"


def key_base(prefix: str, account_id: str, key_id: str) -> str:
    """The base name of one API key's counters (``:rpm``, ``:tpm``, ``:leases``, ``:budget``)."""
    return f"{account_base(prefix, account_id)}:{key_id}"


def wallet(prefix: str, account_id: str) -> str:
    return f"{account_base(prefix, account_id)}:wallet"


def holds(prefix: str, account_id: str) -> str:
    return f"{account_base(prefix, account_id)}:holds"
