"""The site's configuration, read from the environment once at each entry point and passed in from there.

Nothing below the entry points (``dashboard.py``, ``cli``) reads the environment: a function that needs the
site's zone or the store's address is given it. A frozen dataclass rather than pydantic-settings: five
values, each checked with a message that names the variable, need no dependency.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from monitor.timestamps import is_timezone

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "data" / "monitor.db"

DATABASE_URL_ENV = "MONITOR_DATABASE_URL"
TIMEZONE_ENV = "MONITOR_TIMEZONE"
SEED_DEMO_ENV = "MONITOR_SEED_DEMO"
CACHE_SECONDS_ENV = "MONITOR_CACHE_SECONDS"
DEFAULT_CACHE_SECONDS = 60
FUTURE_TOLERANCE_ENV = "MONITOR_FUTURE_TOLERANCE_MINUTES"
SITE_NAME_ENV = "MONITOR_SITE_NAME"
DEFAULT_FUTURE_TOLERANCE_MINUTES = 60  # monitor.formats.records.FUTURE_TOLERANCE


class ConfigError(ValueError):
    """A setting in the environment cannot be used; the message names the variable and the fix."""


@dataclass(frozen=True, slots=True)
class Config:
    """What the site set, checked.

    Attributes
    ----------
    database_url
        The store (``MONITOR_DATABASE_URL``; default the embedded SQLite file ``data/monitor.db``).
    timezone
        The site's IANA zone (``MONITOR_TIMEZONE``, default UTC): days are counted and times shown in it,
        and times sent without an offset are read in it. Stored times are always UTC.
    seed_demo
        Whether the dashboard seeds the synthetic cohort into an empty store (``MONITOR_SEED_DEMO``; by
        default yes for the embedded SQLite store only, so a shared database never receives synthetic
        patients by accident).
    cache_seconds
        How long a dashboard process reuses what it read (``MONITOR_CACHE_SECONDS``, default 60): the
        longest a page can lag behind an import made by another process.
    future_tolerance
        How far after an import a result's collection time may be before the result is refused as in the
        future (``MONITOR_FUTURE_TOLERANCE_MINUTES``, default 60; docs/clinical-basis.md, Plausible
        collection times).
    site_name
        The hospital or unit printed on reports (``MONITOR_SITE_NAME``, default none: the reports then
        name the site's time zone only).
    """

    database_url: str
    timezone: str = "UTC"
    seed_demo: bool = False
    cache_seconds: int = DEFAULT_CACHE_SECONDS
    future_tolerance: timedelta = timedelta(minutes=DEFAULT_FUTURE_TOLERANCE_MINUTES)
    site_name: str = ""

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, database: str | None = None
    ) -> Config:
        """The configuration the environment gives (``os.environ`` unless ``environ``); ``database``, when
        given (the command line's ``--database``), wins over ``MONITOR_DATABASE_URL``.

        Raises
        ------
        ConfigError
            When a variable is set to something that cannot be used.

        Examples
        --------
        >>> Config.from_environment({"MONITOR_TIMEZONE": "Europe/London"}, database="sqlite://").timezone
        'Europe/London'
        >>> Config.from_environment({"MONITOR_TIMEZONE": "Europe"})
        Traceback (most recent call last):
        ...
        services.config.ConfigError: MONITOR_TIMEZONE='Europe' is not an IANA time zone (e.g. Europe/London)
        """
        env = os.environ if environ is None else environ
        url = (
            (database or "").strip()
            or env.get(DATABASE_URL_ENV, "").strip()
            or f"sqlite:///{DEFAULT_SQLITE_PATH}"
        )
        return cls(
            database_url=url,
            timezone=_timezone(env.get(TIMEZONE_ENV, "")),
            seed_demo=_seed_demo(env.get(SEED_DEMO_ENV, ""), url),
            cache_seconds=_cache_seconds(env.get(CACHE_SECONDS_ENV, "")),
            future_tolerance=_future_tolerance(env.get(FUTURE_TOLERANCE_ENV, "")),
            site_name=" ".join(env.get(SITE_NAME_ENV, "").split())[:200],
        )


def _timezone(text: str) -> str:
    name = text.strip() or "UTC"
    if not is_timezone(name):
        raise ConfigError(f"{TIMEZONE_ENV}={name!r} is not an IANA time zone (e.g. Europe/London)")
    return name


def _seed_demo(text: str, url: str) -> bool:
    setting = text.strip().lower()
    if setting in {"0", "false", "no"}:
        return False
    if setting in {"1", "true", "yes"}:
        return True
    if setting:
        raise ConfigError(f"{SEED_DEMO_ENV}={text!r} is not one of 1, 0, true, false, yes, no")
    return url.startswith("sqlite")


def _cache_seconds(text: str) -> int:
    value = text.strip() or str(DEFAULT_CACHE_SECONDS)
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{CACHE_SECONDS_ENV}={value!r} is not a whole number of seconds (at least 1)")
    return int(value)


def _future_tolerance(text: str) -> timedelta:
    value = text.strip() or str(DEFAULT_FUTURE_TOLERANCE_MINUTES)
    if not value.isdigit():
        raise ConfigError(f"{FUTURE_TOLERANCE_ENV}={value!r} is not a whole number of minutes (0 or more)")
    return timedelta(minutes=int(value))
