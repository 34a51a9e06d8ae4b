"""What a provider learns of a client's end user (OpenAI ``user`` / ``safety_identifier``, Anthropic
``metadata.user_id``) and of its prompt cache key (OpenAI ``prompt_cache_key``).

Providers use the end-user id to pin abuse on one end user instead of on the platform's whole
account, which every customer shares: worth sending. The cache key groups requests that share a
prompt prefix, for the router's affinity and OpenAI's own cache routing. Both are sent as hashes,
made here at the edge so that the customer's own value goes no further than the request that carried
it: stable per (account, value), so the provider sees the same person or prefix group as the same id;
scoped to the account, so two customers' "alice" (or "v1") are two; and neither the customer's value
nor the account id reaches the provider.
"""

from __future__ import annotations

import hashlib


def _account_scoped(kind: str, account_id: str, value: str | None) -> str:
    if not value:
        return ""
    digest = hashlib.sha256(f"{kind}:{len(account_id)}:{account_id}:{value}".encode()).hexdigest()
    return f"tg-{digest[:32]}"


def end_user_id(account_id: str, end_user: str | None) -> str:
    """The end-user id to send on ("" when the client named no end user)."""
    return _account_scoped("user", account_id, end_user)


def prompt_cache_key_id(account_id: str, key: str | None) -> str:
    """The prompt cache key to route by and send on ("" when the client gave none); never equal to an
    end-user id made of the same string, so the two cannot be confused at a provider."""
    return _account_scoped("cache", account_id, key)
