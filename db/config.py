"""Where the store lives: one setting, read from the environment."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "data" / "monitor.db"
DATABASE_URL_ENV = "MONITOR_DATABASE_URL"


def database_url(explicit: str | None = None) -> str:
    """The database URL: an explicit one, else ``MONITOR_DATABASE_URL``, else the local SQLite file."""
    if explicit:
        return explicit
    from_env = os.environ.get(DATABASE_URL_ENV, "").strip()
    if from_env:
        return from_env
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"
