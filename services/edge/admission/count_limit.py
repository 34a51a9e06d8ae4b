"""A per-key limit on token counts (``/v1/messages/count_tokens``), apart from the key's plan.

Why apart: counting generates nothing and is free, as at Anthropic, which limits it separately from
message creation; charging counts to the plan's requests per minute or concurrency would make a
client that counts before every message lose half of its plan. But every count is work behind the
edge (a call to the provider's counting endpoint, against the operator's own provider quota, or a
tokenization on the Triton server), so one key must not be able to flood it:
``EDGE_COUNT_TOKENS_PER_MINUTE`` per key, a sliding minute in Redis shared by all edges.

When Redis is down the rate-limit outage policy applies (``EDGE_REDIS_DOWN_RATE_LIMITS``): counts
are served unchecked (``allow``, the default) or refused with a 503.
"""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

from services.common import redis_keys
from services.common.errors import DependencyUnavailable, RateLimited
from services.common.events.keys import KeyEventV1
from services.edge.admission.limiter import Policy

log = structlog.get_logger(__name__)
SCRIPT = Path(__file__).with_name("count_limit.lua")


class CountLimit:
    def __init__(self, client: redis.Redis, prefix: str, per_minute: int, outage: Policy) -> None:
        """``per_minute`` 0: no limit (and no Redis call)."""
        self._prefix = prefix
        self._per_minute = per_minute
        self._outage = outage
        self._script = client.register_script(SCRIPT.read_text())

    async def take(self, key: KeyEventV1) -> None:
        """Count one token count against ``key``'s minute, or raise the 429 (or the outage's 503)."""
        if self._per_minute <= 0:
            return
        counts = f"{redis_keys.key_base(self._prefix, key.account_id, key.key_id)}:counts"
        try:
            taken, retry_after_ms, _ = await self._script(keys=[counts], args=[self._per_minute])
        except RedisError as exc:
            if self._outage == "allow":
                log.warning("count_limit_unchecked_redis_down", error=type(exc).__name__)
                return
            raise DependencyUnavailable(
                "Rate limits cannot be checked right now; retry shortly.", retry_after=5.0
            ) from exc
        if not taken:
            raise RateLimited(
                f"Too many token counts for this API key: at most {self._per_minute} per minute.",
                retry_after=max(int(retry_after_ms), 1) / 1000,
            )
