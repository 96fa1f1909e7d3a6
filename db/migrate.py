"""Alembic, driven from code: the dashboard and the command line bring a store up to date by themselves."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from db.session import make_session_factory
from db.status import refresh_all_status

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class StoreOutOfDate(RuntimeError):
    """A shared (non-SQLite) store is behind the code; an administrator must upgrade it."""


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's configuration for this project, optionally bound to ``engine``."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head", *, timezone: str) -> None:
    """Apply migrations up to ``revision``; a store that held data gets its patient status recomputed
    (a migration may add to what the status holds), its cycle days counted in the site's ``timezone``."""
    before = current_revision(engine)
    command.upgrade(alembic_config(engine), revision)
    if before is not None and current_revision(engine) != before:
        with make_session_factory(engine).begin() as session:
            refresh_all_status(session, now=datetime.now(UTC), timezone=timezone)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` for an empty store)."""
    command.downgrade(alembic_config(engine), revision)


def ensure_current(engine: Engine, *, timezone: str) -> None:
    """Create or upgrade a SQLite store (``timezone``: the site's, for the status an upgrade recomputes);
    refuse to touch a shared store that is behind the code.

    A PostgreSQL store is shared by several users and instances, so its schema changes only when an
    administrator runs ``python -m monitor db upgrade``.
    """
    if current_revision(engine) == head_revision():
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine, timezone=timezone)
        return
    raise StoreOutOfDate("the database schema is not up to date; run: python -m monitor db upgrade")
