from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_")

    http_port: int = Field(default=8094, ge=0, le=65535)
    database_url: str = Field(
        default="postgresql://postgres:tollgate@127.0.0.1:5432/tollgate_catalog",
        pattern=r"^postgres(ql)?://",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
