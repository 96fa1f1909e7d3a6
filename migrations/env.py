"""Alembic environment: the engine the caller passes (``db.migrate``), else, for ``alembic`` run by hand
(an entry point of its own), one on ``MONITOR_DATABASE_URL`` or the embedded store's file; the models'
metadata as the target."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import context
from sqlalchemy import Connection

from db.models import Base
from db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    """The store ``alembic`` is run against by hand: as the dashboard and the command line find it."""
    named = os.environ.get("MONITOR_DATABASE_URL", "").strip()
    return named or f"sqlite:///{Path(__file__).resolve().parents[1] / 'data' / 'monitor.db'}"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or make_engine(_url())
    with engine.connect() as connection:
        _run(connection)
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
