"""``python -m services.edge``."""

from __future__ import annotations

from services.common.lifecycle import run_service
from services.common.settings import load_settings
from services.edge.service import main
from services.edge.settings import EdgeSettings

if __name__ == "__main__":
    settings = load_settings(EdgeSettings)
    run_service("edge", settings, lambda stop: main(settings, stop))
