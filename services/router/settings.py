from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from services.router.backends.http import DEFAULT_TIMEOUTS


class RouterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTER_")

    http_port: int = Field(default=8091, ge=0, le=65535)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    health_check_seconds: float = Field(
        default=5.0, gt=0, le=300, description="interval of the active health checks of deployments"
    )
    provider_timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUTS.after_output, gt=0, le=3600,
        description="longest silence of an external provider once its answer has started (between reads)",
    )
    provider_max_connections: int = Field(
        default=512, ge=1, le=65536,
        description="connections to external providers open at once, over all of them; each streamed "
                    "answer holds one, and requests beyond wait for one (keep it under the open-file limit)",
    )
    provider_pool_wait_seconds: float = Field(
        default=10.0, ge=0, le=3600,
        description="longest wait for a provider connection while all ROUTER_PROVIDER_MAX_CONNECTIONS are "
                    "in use; past it the attempt is an overload (the next deployment, else a 503 with "
                    "Retry-After), with no breaker verdict on the deployment",
    )
    provider_first_output_timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUTS.before_output, gt=0, le=3600,
        description="longest silence of an external provider before its answer's first output (connect, "
                    "status line, a reasoning model thinking); over it, fallback takes the next deployment",
    )
