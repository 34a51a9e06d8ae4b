from __future__ import annotations

import re
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings

_ORIGIN = re.compile(r"^https?://[^/\s,*]+$")  # scheme://host[:port], as a browser sends it


class EdgeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EDGE_")

    http_host: str = "127.0.0.1"
    http_port: int = Field(
        default=8080, ge=0, le=65535, validation_alias=AliasChoices("TOLLGATE_PORT", "EDGE_HTTP_PORT")
    )
    instance_id: str = Field(
        default="edge-1", min_length=1, max_length=128, description="names this edge in events and logs"
    )
    key_hash_secret: SecretStr = Field(
        min_length=32, validation_alias="TOLLGATE_KEY_HASH_SECRET",
        description="server secret of the keyed hash of API keys; the same value in billing and edge",
    )
    admin_key: SecretStr | None = Field(
        default=None, min_length=24, validation_alias="TOLLGATE_ADMIN_KEY",
        description="the operator's management key (Bearer); never logged",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^rediss?://")
    router_address: str = Field(
        default="127.0.0.1:50051", min_length=3,
        description="a gRPC target: host:port, dns:///name:port (every address the name resolves to), "
                    "or ipv4:a:port,b:port",
    )
    router_timeout_seconds: float = Field(
        default=600.0, gt=0, le=7200, description="longest a generation may take end to end"
    )
    cors_allow_origins: str = Field(
        default="*",
        description="origins whose web pages may call the API (CORS), comma-separated, e.g. "
                    "https://app.example.com; * any (keys are never cookies, so this is safe); empty: none",
    )
    stream_keepalive_seconds: float = Field(
        default=10.0, ge=0, le=300,
        description="a stream quiet this long gets a keep-alive (an SSE comment, Anthropic's ping), so "
                    "that proxies do not cut a thinking model's stream as idle; 0 turns them off",
    )
    router_session: bool = Field(
        default=True,
        description="carry calls to the router over one Session stream (off: one gRPC call per request)",
    )
    router_sessions: int = Field(
        default=1, ge=1, le=64,
        description="Session streams to keep, spread over the router addresses (round robin); set it to "
                    "the number of routers so that one edge's calls reach all of them",
    )
    router_session_rehome_seconds: float = Field(
        default=60.0, gt=0, le=86400,
        description="with several sessions: how old a session gets before it moves to the next router",
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="largest request body accepted"
    )
    redis_prefix: str = Field(
        default="tg", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="prefix of every Redis key the edge writes (one per deployment or test run)",
    )
    redis_timeout_seconds: float = Field(
        default=0.5, gt=0, le=10, description="longest an admission round trip to Redis may take"
    )
    redis_max_connections: int = Field(
        default=64, ge=3, le=10_000, description="Redis connections per edge; a burst waits for a free one"
    )
    redis_queue_seconds: float = Field(
        default=5.0, gt=0, le=60,
        description="longest a request waits for its turn to be admitted when all connections are busy; "
                    "then 503 overloaded (never admitted unchecked)",
    )
    lease_ttl_seconds: float = Field(
        default=30.0, ge=3, le=3600,
        description="a concurrency lease not renewed for this long (its edge died) is reclaimed",
    )
    count_tokens_per_minute: int = Field(
        default=600, ge=0, le=1_000_000,
        description="token counts (/v1/messages/count_tokens) one API key may make per minute, apart from "
                    "its plan's limits; 0: no limit",
    )
    redis_down_rate_limits: Literal["allow", "refuse"] = Field(
        default="allow", description="Redis unreachable: serve keys whose limits are RPM/TPM/concurrency only"
    )
    redis_down_budgets: Literal["allow", "refuse"] = Field(
        default="refuse",
        description="Redis unreachable: keys with a budget or a prepaid balance are refused (fail closed)",
    )
    billing_address: str = Field(
        default="127.0.0.1:50052", min_length=3, description="billing's gRPC management backend"
    )
    manage_timeout_seconds: float = Field(
        default=15.0, gt=0, le=300, description="longest a management API call to billing may take"
    )
    spool_root: str = Field(
        default=".tollgate/spool", min_length=1,
        description="usage events are written ahead here, in <spool_root>/<instance_id>, before Kafka",
    )
    spool_max_bytes: int = Field(
        default=1024**3, ge=1024 * 1024,
        description="unsent spool above this: alarm, and new requests are refused until Kafka drains it",
    )
    spool_fsync_seconds: float = Field(
        default=0.02, gt=0, le=1.0,
        description="how often the spool is fsync'd: what a machine (not process) crash can lose at most",
    )
    metering_address: str = Field(
        default="127.0.0.1:50053", min_length=3, description="metering's gRPC usage API backend"
    )
    catalog_address: str = Field(
        default="127.0.0.1:50054", min_length=3, description="catalog's gRPC backend of /v1/manage/models"
    )

    @field_validator("cors_allow_origins")
    @classmethod
    def _origins_well_formed(cls, raw: str) -> str:
        origins = [o.strip() for o in raw.split(",") if o.strip()]
        if origins == ["*"]:
            return raw
        wrong = [o for o in origins if not _ORIGIN.match(o)]
        if wrong:
            raise ValueError(
                f"EDGE_CORS_ALLOW_ORIGINS: {wrong[0]!r} is not an origin (scheme://host[:port], no path), "
                "and * stands alone"
            )
        return raw

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_allow_origins.split(",") if o.strip()]
