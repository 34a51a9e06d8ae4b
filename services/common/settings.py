"""Settings: one pydantic-settings class per service, built once in ``main()`` and passed down.

Platform-wide settings (where Kafka is, the topic prefix, log level) have one name for every service
(``TOLLGATE_KAFKA_BOOTSTRAP``); a service's own settings carry its prefix (``EDGE_HTTP_PORT``). Only
settings modules read the environment. A bad value stops start-up with a message naming the variable,
never a traceback deep in a driver.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Literal, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error"]
Bus = Literal["kafka", "tansu"]


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``env_prefix`` in their own ``model_config``."""

    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, validate_default=True, populate_by_name=True
    )

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", min_length=3, validation_alias="TOLLGATE_KAFKA_BOOTSTRAP"
    )
    bus: Bus = Field(
        default="kafka",
        validation_alias="TOLLGATE_BUS",
        description="kafka (durable, production) or tansu (in-memory light mode: no idempotent producer)",
    )
    topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        validation_alias="TOLLGATE_TOPIC_PREFIX",
        description="prepended to every topic name; lets test runs share one broker",
    )
    log_level: LogLevel = Field(default="info", validation_alias="TOLLGATE_LOG_LEVEL")
    http_host: str = "127.0.0.1"
    http_port: int = Field(ge=0, le=65535)
    shutdown_grace_seconds: float = Field(default=10.0, gt=0, le=300)

    def topic(self, name: str) -> str:
        """The real topic name for a declared topic (``usage.v1`` → ``<prefix>usage.v1``)."""
        return f"{self.topic_prefix}{name}"


S = TypeVar("S", bound=BaseSettings)


def env_name(cls: type[BaseSettings], field: str) -> str:
    """The environment variable a field is read from, for error messages."""
    info = cls.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def _is_secret(cls: type[BaseSettings], loc: str) -> bool:
    for field, info in cls.model_fields.items():
        if loc in (field, env_name(cls, field)) and "SecretStr" in str(info.annotation):
            return True
    return False


def describe_errors(cls: type[BaseSettings], exc: ValidationError) -> str:
    """One line per bad variable; the offending value is shown unless the field holds a secret."""
    lines = []
    for err in exc.errors():
        loc = err["loc"][0] if err["loc"] else "?"
        name = str(loc) if str(loc).isupper() else env_name(cls, str(loc))
        got = err.get("input")
        hidden = isinstance(got, dict) or _is_secret(cls, str(loc))
        shown = "" if hidden else f" (got {got!r})"
        lines.append(f"invalid setting {name}: {err['msg']}{shown}")
    return "\n".join(lines)


def stray_copies(cls: type[BaseSettings], environ: Mapping[str, str]) -> list[str]:
    """One line per platform-wide setting set under this service's prefix as well.

    pydantic-settings reads a field by its name too (``populate_by_name``), so ``BILLING_KEY_HASH_SECRET``
    would reach billing's ``key_hash_secret`` whenever ``TOLLGATE_KEY_HASH_SECRET`` is unset: one
    service with a different secret than the others, and every key fails. A platform-wide setting has
    one name; a second one is refused at start-up rather than half-used."""
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    lines = []
    for field, info in cls.model_fields.items():
        alias = info.validation_alias
        copy = f"{prefix}{field}".upper()
        if isinstance(alias, str) and alias.startswith("TOLLGATE_") and prefix and copy in environ:
            lines.append(f"invalid setting {copy}: platform-wide, so read only as {alias}; unset {copy}")
    return lines


def load_settings(cls: type[S]) -> S:
    """Build settings from the environment or exit(2) with one line per bad variable."""
    if strays := stray_copies(cls, os.environ):
        print("\n".join(strays), file=sys.stderr)
        raise SystemExit(2)
    try:
        return cls()
    except ValidationError as exc:
        print(describe_errors(cls, exc), file=sys.stderr)
        raise SystemExit(2) from None
