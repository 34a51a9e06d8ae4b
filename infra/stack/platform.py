"""The whole platform on its embedded defaults: infrastructure, migrations, topics, five services.

Used by ``make run`` (``python -m infra.stack up``) with fixed ports and the durable run folder
``.tollgate/``, and by the test suite with free ports, a temporary run folder and a unique topic prefix.
Everything is started in dependency order and stopped in reverse, each process by its PID.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from infra.stack.kafka import KafkaServer
from infra.stack.localstripe import LocalstripeServer
from infra.stack.paths import REPO_ROOT
from infra.stack.ports import free_port
from infra.stack.postgres import PostgresServer
from infra.stack.redis import RedisServer
from infra.stack.services import SERVICES, ServiceProcess
from infra.stack.tansu import TansuServer
from infra.stack.topics import ensure_topics
from infra.stack.triton import TritonServer


class Server(Protocol):
    def start(self) -> object: ...
    def wait_ready(self, timeout: float = ...) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Ports:
    kafka: int = 19092
    kafka_controller: int = 19093
    postgres: int = 15432
    redis: int = 16379
    localstripe: int = 18420
    triton_grpc: int = 18001
    triton_http: int = 18000
    triton_metrics: int = 18002
    router_grpc: int = 50051
    billing_grpc: int = 50052
    metering_grpc: int = 50053
    catalog_grpc: int = 50054
    edge: int = 8080
    router: int = 8091
    metering: int = 8092
    billing: int = 8093
    catalog: int = 8094

    @classmethod
    def free(cls) -> Ports:
        return cls(**{name: free_port() for name in asdict(cls())})


@dataclass
class PlatformConfig:
    run_dir: Path
    ports: Ports
    bus: str = "kafka"  # or "tansu" (in-memory light mode)
    topic_prefix: str = ""
    model: str = "smollm2-135m-instruct"
    admin_key: str | None = None


class Platform:
    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        run, ports = config.run_dir, config.ports
        self.bus: KafkaServer | TansuServer = (
            TansuServer(run, ports.kafka) if config.bus == "tansu"
            else KafkaServer(run, ports.kafka, ports.kafka_controller)
        )
        self.postgres = PostgresServer(run, ports.postgres)
        self.redis = RedisServer(run, ports.redis)
        self.triton = TritonServer(
            run, ports.triton_grpc, ports.triton_http, ports.triton_metrics, model=config.model
        )
        self.admin_key = config.admin_key or self._secret("TOLLGATE_ADMIN_KEY", "admin_key", "tg-admin-")
        self.key_hash_secret = self._secret("TOLLGATE_KEY_HASH_SECRET", "key_hash_secret", "")
        self.stripe_webhook_secret = self._secret(
            "TOLLGATE_STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret", "whsec_"
        )
        # Stripe's signed events reach billing the way production's do: through the edge's public route
        self.localstripe = LocalstripeServer(
            run, ports.localstripe, f"http://127.0.0.1:{ports.edge}/v1/webhooks/stripe",
            self.stripe_webhook_secret,
        )
        self.services = {
            name: ServiceProcess(name, getattr(ports, name), self.service_env(name), run)
            for name in SERVICES
        }

    def _secret(self, variable: str, filename: str, prefix: str) -> str:
        """``variable`` if set, else the value generated on the first run (kept, mode 0600)."""
        from_env = os.environ.get(variable)
        if from_env:
            return from_env
        path = self.config.run_dir / filename
        if path.exists():
            return path.read_text().strip()
        key = prefix + secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(key + "\n")
        return key

    @property
    def redis_prefix(self) -> str:
        """One per run: the edges' counters and billing's wallets share it."""
        return f"tg:{self.config.topic_prefix.strip('.') or 'run'}"

    def service_env(self, name: str) -> dict[str, str]:
        """Everything a service is told, through its environment only."""
        ports = self.config.ports
        env = {
            "TOLLGATE_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports.kafka}",
            "TOLLGATE_BUS": self.config.bus,
            "TOLLGATE_TOPIC_PREFIX": self.config.topic_prefix,
            "TOLLGATE_LOG_LEVEL": os.environ.get("TOLLGATE_LOG_LEVEL", "info"),
            "PYTHONPATH": str(REPO_ROOT),
        }
        prefix = name.upper()
        env[f"{prefix}_HTTP_PORT"] = str(getattr(ports, name))
        if name in ("billing", "catalog"):
            env[f"{prefix}_DATABASE_URL"] = self.postgres.dsn(f"tollgate_{name}")
        if name in ("billing", "edge"):
            env["TOLLGATE_KEY_HASH_SECRET"] = self.key_hash_secret
        if name == "metering":
            env["METERING_CHDB_PATH"] = str(self.config.run_dir / "chdb")
        if name == "router":
            env["ROUTER_GRPC_PORT"] = str(ports.router_grpc)
        if name == "billing":
            env["BILLING_GRPC_PORT"] = str(ports.billing_grpc)
            env["BILLING_REDIS_URL"] = self.redis.url
            env["BILLING_REDIS_PREFIX"] = self.redis_prefix
            env["BILLING_METERING_ADDRESS"] = f"127.0.0.1:{ports.metering_grpc}"
            env["BILLING_STRIPE_API_KEY"] = self.localstripe.api_key
            env["BILLING_STRIPE_API_BASE"] = self.localstripe.url
            env["BILLING_STRIPE_WEBHOOK_SECRET"] = self.stripe_webhook_secret
        if name == "metering":
            env["METERING_GRPC_PORT"] = str(ports.metering_grpc)
        if name == "catalog":
            env["CATALOG_GRPC_PORT"] = str(ports.catalog_grpc)
        if name == "edge":
            env["EDGE_REDIS_URL"] = self.redis.url
            env["EDGE_ROUTER_ADDRESS"] = f"127.0.0.1:{ports.router_grpc}"
            env["EDGE_BILLING_ADDRESS"] = f"127.0.0.1:{ports.billing_grpc}"
            env["EDGE_METERING_ADDRESS"] = f"127.0.0.1:{ports.metering_grpc}"
            env["EDGE_CATALOG_ADDRESS"] = f"127.0.0.1:{ports.catalog_grpc}"
            env["EDGE_SPOOL_ROOT"] = str(self.config.run_dir / "spool")
            env["EDGE_REDIS_PREFIX"] = self.redis_prefix
            env["TOLLGATE_ADMIN_KEY"] = self.admin_key
            env.pop("EDGE_HTTP_PORT")
            env["TOLLGATE_PORT"] = str(ports.edge)
        return env

    def infrastructure(self) -> list[Server]:
        return [self.bus, self.postgres, self.redis, self.localstripe, self.triton]  # triton last (see below)

    def start_infrastructure(self, with_triton: bool = True) -> None:
        servers = self.infrastructure() if with_triton else self.infrastructure()[:-1]
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()

    def _run(self, name: str, *args: str, **extra_env: str) -> None:
        env = {**os.environ, **self.service_env(name), **extra_env}
        done = subprocess.run(
            [sys.executable, "-m", f"services.{name}", *args],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed:\n{done.stderr[-3000:]}")

    def migrate(self) -> None:
        """PostgreSQL (billing, catalog) and ClickHouse (metering) migrations, topics, catalog seed."""
        for name in ("billing", "catalog", "metering"):
            self._run(name, "migrate")
        asyncio.run(ensure_topics(self.bus.bootstrap, prefix=self.config.topic_prefix))
        self._run("catalog", "seed", TOLLGATE_TRITON_URL=self.triton.grpc_url)
        self._run("billing", "bootstrap", str(self.demo_key_file))

    @property
    def demo_key_file(self) -> Path:
        return self.config.run_dir / "demo_key"

    def demo_key(self) -> str:
        return self.demo_key_file.read_text().strip()

    def start_services(self, names: tuple[str, ...] = SERVICES) -> None:
        for name in names:
            self.services[name].start()
        for name in names:
            self.services[name].wait_ready()

    def up(self) -> None:
        self.start_infrastructure()
        self.migrate()
        self.start_services()
        (self.config.run_dir / "ports.json").write_text(json.dumps(asdict(self.config.ports), indent=2))

    def down(self) -> None:
        """Services first (they drain into Kafka and the stores), then infrastructure, by PID."""
        for name in reversed(SERVICES):
            self.services[name].stop()
        for server in reversed(self.infrastructure()):
            server.stop()
