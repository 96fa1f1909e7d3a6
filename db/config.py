"""Transitional: the environment's settings as the code read them before ``services.config.Config``.

Each function builds the configuration afresh from the environment; callers are moving to a ``Config``
passed in from their entry point, and this module goes when the last one has.
"""

from __future__ import annotations

import os

from monitor.timestamps import is_timezone
from services.config import (
    CACHE_SECONDS_ENV,
    DATABASE_URL_ENV,
    DEFAULT_CACHE_SECONDS,
    DEFAULT_SQLITE_PATH,
    PROJECT_ROOT,
    SEED_DEMO_ENV,
    TIMEZONE_ENV,
    _cache_seconds,
    _seed_demo,
    _timezone,
)

DISPLAY_TIMEZONE_ENV = TIMEZONE_ENV
__all__ = [
    "CACHE_SECONDS_ENV",
    "DATABASE_URL_ENV",
    "DEFAULT_CACHE_SECONDS",
    "DEFAULT_SQLITE_PATH",
    "DISPLAY_TIMEZONE_ENV",
    "PROJECT_ROOT",
    "SEED_DEMO_ENV",
    "is_timezone",
]


def database_url(explicit: str | None = None) -> str:
    url = (explicit or "").strip() or os.environ.get(DATABASE_URL_ENV, "").strip()
    return url or f"sqlite:///{DEFAULT_SQLITE_PATH}"


def display_timezone() -> str:
    return _timezone(os.environ.get(TIMEZONE_ENV, ""))


def seed_demo_when_empty(url: str) -> bool:
    return _seed_demo(os.environ.get(SEED_DEMO_ENV, ""), url)


def cache_seconds() -> int:
    return _cache_seconds(os.environ.get(CACHE_SECONDS_ENV, ""))
