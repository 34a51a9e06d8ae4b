from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class MeteringSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="METERING_")

    http_port: int = Field(default=8092, ge=0, le=65535)
    store: Literal["chdb", "clickhouse"] = "chdb"
    chdb_path: str = Field(default=".tollgate/chdb", min_length=1)
    clickhouse_url: str = "http://127.0.0.1:8123/default"
    batch_max_records: int = Field(default=5000, ge=1, le=100_000)
    batch_max_wait_seconds: float = Field(default=0.5, gt=0, le=60)
