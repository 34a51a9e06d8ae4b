from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class MeteringSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="METERING_")

    http_port: int = Field(default=8092, ge=0, le=65535, description="ops endpoints and /ops/usage")
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(
        default=50053, ge=0, le=65535,
        description="tollgate.manage.v1.ManagementService: the usage API (the edge calls it)",
    )
    store: Literal["chdb", "clickhouse"] = "chdb"
    chdb_path: str = Field(default=".tollgate/chdb", min_length=1)
    clickhouse_url: str = "http://127.0.0.1:8123/default"
    batch_max_records: int = Field(default=20_000, ge=1, le=100_000)
    batch_max_wait_seconds: float = Field(default=0.5, gt=0, le=60)
    price_wait_seconds: float = Field(
        default=10.0, ge=0, le=600,
        description="how long an event naming a price version not (yet) in catalog.v1 is retried before it "
        "is dead-lettered: the edge may see a new price a moment before metering does",
    )
