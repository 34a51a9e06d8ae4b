from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class EdgeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EDGE_")

    http_host: str = "127.0.0.1"
    http_port: int = Field(
        default=8080, ge=0, le=65535, validation_alias=AliasChoices("TOLLGATE_PORT", "EDGE_HTTP_PORT")
    )
    edge_id: str = Field(default="edge-1", min_length=1, max_length=128)
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^rediss?://")
    router_address: str = Field(default="127.0.0.1:50051", min_length=3)
