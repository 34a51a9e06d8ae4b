"""``python -m services.router``."""

from __future__ import annotations

from services.common.lifecycle import run_service
from services.common.settings import load_settings
from services.router.service import main
from services.router.settings import RouterSettings

if __name__ == "__main__":
    settings = load_settings(RouterSettings)
    run_service("router", settings, lambda stop: main(settings, stop))
