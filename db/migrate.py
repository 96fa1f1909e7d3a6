"""Alembic, driven from code: the dashboard and the command line bring a store up to date by themselves."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError

__all__ = [
    "StoreOutOfDate",
    "StoreUnusable",
    "alembic_config",
    "checked_revision",
    "current_revision",
    "downgrade",
    "ensure_current",
    "head_revision",
    "upgrade",
]

from db.session import StoreUnusable, make_session_factory, store_name
from db.status import refresh_all_status

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class StoreOutOfDate(StoreUnusable):
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
    """The store's schema revision (None: no schema yet).

    Raises
    ------
    StoreUnusable
        When the store is a file that is not a SQLite database, or a damaged one.
    """
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DatabaseError as error:
        cause = str(getattr(error, "orig", None) or error)
        if engine.dialect.name == "sqlite" and ("not a database" in cause or "malformed" in cause):
            what = (
                "not a SQLite database"
                if "not a database" in cause
                else f"a damaged SQLite database ({cause})"
            )
            raise StoreUnusable(
                store_name(engine.url),
                f"{what}: restore the store from a backup, or move the file away to start a new store",
            ) from error
        raise


def checked_revision(engine: Engine) -> str | None:
    """The store's schema revision (None: no schema yet), once the store is known to be usable.

    A store this code cannot open is refused, named, with what is wrong and what to do, rather than
    changed: a file that is not a SQLite database (`current_revision`), or a schema newer than the code (an
    empty SQLite file is refused when its engine is made: ``db.session.make_engine``).

    Raises
    ------
    StoreUnusable
        When the store cannot be used as it is.
    """
    current = current_revision(engine)
    script = ScriptDirectory.from_config(alembic_config())
    known = {revision.revision for revision in script.walk_revisions()}
    if current is not None and current not in known:
        raise StoreUnusable(
            store_name(engine.url),
            f"schema revision {current} is newer than this code's {script.get_current_head()}: "
            "upgrade the code",
        )
    return current


def upgrade(engine: Engine, revision: str = "head", *, timezone: str) -> None:
    """Apply migrations up to ``revision``; a store that held data gets its patient status recomputed
    (a migration may add to what the status holds), its cycle days counted in the site's ``timezone``."""
    before = checked_revision(engine)
    command.upgrade(alembic_config(engine), revision)
    if before is not None and current_revision(engine) != before:
        with make_session_factory(engine).begin() as session:
            refresh_all_status(session, now=datetime.now(UTC), timezone=timezone)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` for an empty store)."""
    command.downgrade(alembic_config(engine), revision)


def ensure_current(engine: Engine, *, timezone: str) -> None:
    """Create or upgrade a SQLite store (``timezone``: the site's, for the status an upgrade recomputes);
    refuse to touch a shared store that is behind the code, or a store that cannot be used as it is
    (`checked_revision`).

    A PostgreSQL store is shared by several users and instances, so its schema changes only when an
    administrator runs ``python -m monitor db upgrade``.
    """
    if checked_revision(engine) == head_revision():
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine, timezone=timezone)
        return
    raise StoreOutOfDate(
        store_name(engine.url), "the database schema is not up to date; run: python -m monitor db upgrade"
    )
