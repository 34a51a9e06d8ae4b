from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_")

    http_port: int = Field(default=8093, ge=0, le=65535)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(
        default=50052, ge=0, le=65535, description="tollgate.manage.v1.ManagementService (the edge calls it)"
    )
    database_url: str = Field(
        default="postgresql://postgres:tollgate@127.0.0.1:5432/tollgate_billing",
        pattern=r"^postgres(ql)?://",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    key_hash_secret: SecretStr = Field(
        min_length=32, validation_alias="TOLLGATE_KEY_HASH_SECRET",
        description="server secret of the keyed hash of API keys; the same value in billing and edge",
    )
    outbox_interval_seconds: float = Field(
        default=1.0, gt=0, le=60,
        description="how often keys.v1's outbox is swept for changes not yet published (Kafka was down)",
    )
    publish_wait_seconds: float = Field(
        default=2.0, ge=0, le=30,
        description="how long a management request waits for its keys.v1 events before answering anyway",
    )
