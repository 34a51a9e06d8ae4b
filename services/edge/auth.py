"""Authentication from memory: the edge's index of keys.v1, looked up by keyed hash.

No database on the request path (promise 5 and "auth must not fail when PostgreSQL is down"): billing
publishes every change of a key, its plan or its account to keys.v1, and each edge applies it within
the snapshot's lag. Unknown, disabled, revoked and expired keys all answer the same 401, so a caller
learns nothing about which keys exist; a suspended account answers 403 naming the reason.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from starlette.datastructures import Headers

from services.common.api_keys import hash_key, looks_like_key
from services.common.errors import AuthenticationFailed, PermissionDenied
from services.common.events.keys import KeyEventV1, KeyKind

INVALID = "Incorrect API key provided. You can find your API key in your dashboard."


class KeyIndex:
    """key hash → current key state; fed by the keys.v1 snapshot's change callback."""

    def __init__(self, server_secret: str) -> None:
        self._secret = server_secret
        self._by_hash: dict[str, KeyEventV1] = {}
        self._hash_of: dict[str, str] = {}

    def apply(self, key_id: str, event: KeyEventV1 | None) -> None:
        old = self._hash_of.pop(key_id, None)
        if old is not None:
            self._by_hash.pop(old, None)
        if event is not None:
            self._by_hash[event.key_hash] = event
            self._hash_of[key_id] = event.key_hash

    def authenticate(
        self, presented: str | None, now: datetime | None = None, kind: KeyKind = "inference"
    ) -> KeyEventV1:
        """The active key behind ``presented``, if it is of ``kind`` (inference keys cannot manage,
        management keys cannot generate: a leaked application key never opens the management API)."""
        if not presented or not looks_like_key(presented):
            raise AuthenticationFailed(INVALID)
        digest = hash_key(presented, self._secret)
        key = self._by_hash.get(digest)
        if key is None or not hmac.compare_digest(key.key_hash, digest) or key.status != "active":
            raise AuthenticationFailed(INVALID)
        at = now or datetime.now(UTC)
        if key.expires_at is not None and key.expires_at <= at:
            raise AuthenticationFailed(INVALID)
        if key.kind != kind:
            raise PermissionDenied(
                f"This is a {key.kind} key; it cannot be used for the {kind} API.", code="wrong_key_kind"
            )
        if key.account_status != "active":
            raise PermissionDenied(
                "This account is suspended; contact the platform operator.", code="account_suspended"
            )
        if key.plan_expires_at is not None and key.plan_expires_at <= at:
            raise PermissionDenied("This key's plan has expired; contact the platform operator.",
                                   code="plan_expired")
        return key

    def __len__(self) -> int:
        return len(self._by_hash)


def presented_key(headers: Headers) -> str | None:
    """``Authorization: Bearer <key>`` (OpenAI) or ``x-api-key: <key>`` (Anthropic clients). An
    ``Authorization`` of another scheme (a proxy's Basic credentials) is not ours and does not hide
    an ``x-api-key`` beside it."""
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
    return headers.get("x-api-key")
