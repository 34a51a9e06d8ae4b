"""Documentation that must stay true: every setting of every service is in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from services.billing.settings import BillingSettings
from services.catalog.settings import CatalogSettings
from services.common.settings import env_name
from services.edge.settings import EdgeSettings
from services.metering.settings import MeteringSettings
from services.router.settings import RouterSettings

DOC = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
GENERIC = {"http_host", "shutdown_grace_seconds"}  # documented once as <PREFIX>_...


@pytest.mark.parametrize(
    "cls", [EdgeSettings, RouterSettings, MeteringSettings, BillingSettings, CatalogSettings]
)
def test_every_setting_is_documented(cls: type[BaseSettings]) -> None:
    missing = [
        env_name(cls, name) for name in cls.model_fields
        if name not in GENERIC and f"`{env_name(cls, name)}`" not in DOC
    ]
    assert missing == []
