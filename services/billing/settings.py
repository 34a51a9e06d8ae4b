from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_")

    http_port: int = Field(default=8093, ge=0, le=65535)
    database_url: str = Field(
        default="postgresql://postgres:tollgate@127.0.0.1:5432/tollgate_billing",
        pattern=r"^postgres(ql)?://",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    key_hash_secret: SecretStr = Field(
        min_length=32, validation_alias="TOLLGATE_KEY_HASH_SECRET",
        description="server secret of the keyed hash of API keys; the same value in billing and edge",
    )
