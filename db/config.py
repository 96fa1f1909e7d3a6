"""Where the store lives: one setting, read from the environment."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from zoneinfo import available_timezones

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


DISPLAY_TIMEZONE_ENV = "MONITOR_TIMEZONE"
SEED_DEMO_ENV = "MONITOR_SEED_DEMO"


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones() | {"UTC"})


def is_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows (e.g. Europe/London, UTC).

    Checked against the zone names, not by loading: a folder of the database ("Europe", half typed)
    would raise an OSError, and files that are not zones ("localtime", "posixrules") would load.
    """
    return name in _zone_names()


def display_timezone() -> str:
    """The site's time zone, for showing times (stored times are always UTC); default UTC.

    Raises
    ------
    ValueError
        When ``MONITOR_TIMEZONE`` is not an IANA time zone name.
    """
    name = os.environ.get(DISPLAY_TIMEZONE_ENV, "").strip() or "UTC"
    if not is_timezone(name):
        raise ValueError(f"{DISPLAY_TIMEZONE_ENV}={name!r} is not an IANA time zone (e.g. Europe/London)")
    return name


def seed_demo_when_empty(url: str) -> bool:
    """Whether the dashboard seeds the synthetic cohort into an empty store.

    Yes by default for the embedded SQLite store (a newcomer's first start); for a shared store only when
    ``MONITOR_SEED_DEMO=1``, so that a production database never receives synthetic patients by accident.
    """
    setting = os.environ.get(SEED_DEMO_ENV, "").strip().lower()
    if setting in {"0", "false", "no"}:
        return False
    if setting in {"1", "true", "yes"}:
        return True
    return url.startswith("sqlite")


CACHE_SECONDS_ENV = "MONITOR_CACHE_SECONDS"
DEFAULT_CACHE_SECONDS = 60


def cache_seconds() -> int:
    """How long a dashboard process reuses what it read from the store (``MONITOR_CACHE_SECONDS``, default
    60): the longest a page can lag behind an import made elsewhere (another process, the command line).

    Raises
    ------
    ValueError
        When the setting is not a whole number of seconds of at least 1.
    """
    text = os.environ.get(CACHE_SECONDS_ENV, "").strip() or str(DEFAULT_CACHE_SECONDS)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{CACHE_SECONDS_ENV}={text!r} is not a whole number of seconds (at least 1)")
    return int(text)
