"""What a provider learns of a client's end user (OpenAI ``user`` / ``safety_identifier``, Anthropic
``metadata.user_id``).

Providers use the id to pin abuse on one end user instead of on the platform's whole account, which
every customer shares: worth sending. Sent as a hash, made here at the edge so that the customer's
own id goes no further than the request that carried it: stable per (account, end user), so the
provider sees the same person as the same id; scoped to the account, so two customers' "alice" are
two people; and neither the customer's id nor the account id reaches the provider.
"""

from __future__ import annotations

import hashlib


def end_user_id(account_id: str, end_user: str | None) -> str:
    """The id to send on ("" when the client named no end user)."""
    if not end_user:
        return ""
    digest = hashlib.sha256(f"{len(account_id)}:{account_id}:{end_user}".encode()).hexdigest()
    return f"tg-{digest[:32]}"
