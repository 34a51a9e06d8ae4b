"""Session fixtures: the real servers, started once per test session on free ports in a temporary
run folder with a unique topic prefix, so parallel runs and leftovers never collide. Each is stopped
by its PID at the end of the session.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.stack.platform import Platform, PlatformConfig, Ports
from infra.stack.topics import ensure_topics

RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"tollgate-test-{RUN_ID}-"))
    path.chmod(0o755)  # PostgreSQL runs as an unprivileged user when we are root
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def topic_prefix() -> str:
    return f"t{RUN_ID}."


@pytest.fixture(scope="session")
def platform(run_dir: Path, topic_prefix: str) -> Iterator[Platform]:
    """Kafka, PostgreSQL, Redis and Triton (tiny model) up, migrations applied, topics created.

    Services are not started here; tests that need them start them (and stop them) themselves.
    """
    config = PlatformConfig(
        run_dir=run_dir, ports=Ports.free(), topic_prefix=topic_prefix, model="tiny-random-llama",
        admin_key="tg-admin-test-" + RUN_ID * 4,
    )
    plat = Platform(config)
    try:
        plat.start_infrastructure()
        plat.migrate()
        yield plat
    finally:
        plat.down()
        plat.postgres.remove_data()


@pytest.fixture(scope="session")
def bootstrap(platform: Platform) -> str:
    return platform.bus.bootstrap


@pytest.fixture(scope="session")
async def topics(platform: Platform, topic_prefix: str) -> list[str]:
    return await ensure_topics(platform.bus.bootstrap, prefix=topic_prefix)


def unique(name: str) -> str:
    """A name no other test (or run) uses: topics, groups, databases."""
    return f"{name}_{uuid.uuid4().hex[:8]}"
