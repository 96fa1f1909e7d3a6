"""The store the entry points work on: opened from the configuration, brought up to date where allowed."""

from __future__ import annotations

from typing import TypeAlias

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.migrate import StoreOutOfDate, StoreUnusable
from db.store import open_store as _open
from services.config import Config

# The handle entry points hold on the store: a session factory, used only by passing it to services.
Store: TypeAlias = sessionmaker[Session]


def open_store(config: Config) -> Store:
    """Sessions on the configured store; a SQLite store not there yet is created, an old one upgraded first
    (a shared PostgreSQL store is upgraded only by ``python -m monitor db upgrade``).

    Raises
    ------
    StoreUnusable
        When the store cannot be used as it is (an empty file, not a SQLite database, a schema newer than
        the code, or a shared store behind it), with a message naming the store, the problem and what to do.
    """
    return _open(config.database_url, timezone=config.timezone)


__all__ = ["STORE_ERRORS", "Store", "StoreOutOfDate", "StoreUnusable", "open_store"]


# What "the store could not be used" means to an entry point: out of date, unusable as it is (an empty or
# damaged file, a schema newer than the code: `StoreUnusable`'s message names the store and what to do),
# unreachable, or failing.
STORE_ERRORS: tuple[type[Exception], ...] = (StoreUnusable, SQLAlchemyError)
