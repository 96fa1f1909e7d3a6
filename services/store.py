"""The store the entry points work on: opened from the configuration, brought up to date where allowed."""

from __future__ import annotations

from typing import TypeAlias

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.migrate import StoreOutOfDate
from db.store import open_store as _open
from services.config import Config

# The handle entry points hold on the store: a session factory, used only by passing it to services.
Store: TypeAlias = sessionmaker[Session]


def open_store(config: Config) -> Store:
    """Sessions on the configured store; an empty or old SQLite store is created or upgraded first (a shared
    PostgreSQL store is upgraded only by ``python -m monitor db upgrade``)."""
    return _open(config.database_url, timezone=config.timezone)


# What "the store could not be used" means to an entry point: out of date, unreachable, or failing.
STORE_ERRORS: tuple[type[Exception], ...] = (StoreOutOfDate, SQLAlchemyError)
