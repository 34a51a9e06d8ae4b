"""API key secrets: how they are made, shown and hashed. Shared by billing (which issues keys) and
the edge (which checks them); nothing else ever sees a secret.

A key is ``tg-`` + 43 base64url characters (32 random bytes = 256 bits). Only a keyed hash is
stored or published: HMAC-SHA256 with a server secret (``TOLLGATE_KEY_HASH_SECRET``), so a leaked
keys table or keys.v1 topic cannot be brute-forced offline without that secret as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "tg-"
DISPLAY_CHARS = 8


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def display_prefix(key: str) -> str:
    """What the dashboard shows to tell keys apart: ``tg-AbCd1234`` (never enough to guess it)."""
    return key[: len(KEY_PREFIX) + DISPLAY_CHARS]


def hash_key(key: str, server_secret: str) -> str:
    return hmac.new(server_secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 200
