"""What billing's handlers are given besides the caller and the request (``services.common.manage``):
the database, the keys.v1 outbox to flush after a commit, and the secret that hashes new keys."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from services.common.outbox import Flusher


@dataclass(frozen=True)
class Deps:
    pool: asyncpg.Pool
    outbox: Flusher
    key_hash_secret: str = field(repr=False)
    flush_timeout: float = 2.0
