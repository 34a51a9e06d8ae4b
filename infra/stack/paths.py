"""Where the stack keeps downloads (shared cache) and per-run state (run folder)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Downloads and converted artefacts shared by every run: Kafka jars, model weights.

    ``TOLLGATE_CACHE`` overrides; default ``~/.cache/tollgate``. Never inside a run folder, so that a
    test run or a ``make clean`` does not throw away a 500 MB conversion.
    """
    return Path(os.environ.get("TOLLGATE_CACHE", Path.home() / ".cache" / "tollgate")).resolve()


def default_run_dir() -> Path:
    """The run folder of ``make run``: data dirs, logs, PID files, generated secrets."""
    return Path(os.environ.get("TOLLGATE_RUN_DIR", REPO_ROOT / ".tollgate")).resolve()
