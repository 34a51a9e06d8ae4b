from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTER_")

    http_port: int = Field(default=8091, ge=0, le=65535)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    triton_url: str = Field(default="127.0.0.1:8001", min_length=3)
    triton_model: str = Field(default="ensemble", min_length=1)
    default_model: str = Field(default="smollm2-135m-instruct", min_length=1)
