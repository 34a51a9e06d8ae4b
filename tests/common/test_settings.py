from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.settings import load_settings
from services.edge.settings import EdgeSettings
from services.metering.settings import MeteringSettings

ROOT = Path(__file__).resolve().parents[2]


def test_shared_settings_use_one_name_and_service_settings_their_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOLLGATE_KAFKA_BOOTSTRAP", "10.0.0.1:9092")
    monkeypatch.setenv("TOLLGATE_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("METERING_BATCH_MAX_RECORDS", "123")
    settings = load_settings(MeteringSettings)
    assert settings.kafka_bootstrap == "10.0.0.1:9092"
    assert settings.batch_max_records == 123
    assert settings.topic("usage.v1") == "staging.usage.v1"


def test_tollgate_port_sets_the_edge_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_PORT", "9999")
    monkeypatch.setenv("TOLLGATE_KEY_HASH_SECRET", "k" * 32)
    assert load_settings(EdgeSettings).http_port == 9999


@pytest.mark.parametrize(
    ("service", "variable", "value"),
    [
        ("edge", "EDGE_REDIS_URL", "http://not-redis"),
        ("edge", "TOLLGATE_PORT", "eighty"),
        ("router", "ROUTER_GRPC_PORT", "70000"),
        ("metering", "METERING_STORE", "sqlite"),
        ("billing", "BILLING_DATABASE_URL", "mysql://x"),
        ("catalog", "TOLLGATE_BUS", "rabbitmq"),
        ("billing", "TOLLGATE_LOG_LEVEL", "chatty"),
    ],
)
def test_bad_setting_fails_start_up_naming_the_variable(service: str, variable: str, value: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLGATE_", "EDGE_", "ROUTER_"))}
    env[variable] = value
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert f"invalid setting {variable}:" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("service", "copy", "name"), [
    ("billing", "BILLING_KEY_HASH_SECRET", "TOLLGATE_KEY_HASH_SECRET"),
    ("router", "ROUTER_KAFKA_BOOTSTRAP", "TOLLGATE_KAFKA_BOOTSTRAP"),
])
def test_a_platform_wide_setting_under_a_services_prefix_stops_start_up(service: str, copy: str, name: str) -> None:
    """Read as a fallback, a stray copy would give one service another key-hash secret or broker than
    the rest; refused, the operator learns the one name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLGATE_", "BILLING_", "ROUTER_"))}
    env[copy] = "x" * 40
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert f"invalid setting {copy}: platform-wide, so read only as {name}" in done.stderr
    assert "x" * 40 not in done.stderr and "Traceback" not in done.stderr


def test_a_bad_secret_is_named_but_never_echoed() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLGATE_", "EDGE_"))}
    env["TOLLGATE_ADMIN_KEY"] = "tg-short-secret"
    done = subprocess.run(
        [sys.executable, "-m", "services.edge"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "invalid setting TOLLGATE_ADMIN_KEY:" in done.stderr
    assert "tg-short-secret" not in done.stderr
