"""Alembic environment: the engine the caller passes (``db.migrate``), else one on the URL the site's
configuration names (``alembic`` run by hand); the models' metadata as the target."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from db.models import Base
from db.session import make_engine
from services.config import Config as SiteConfig

config = context.config
target_metadata = Base.metadata


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
        url=SiteConfig.from_environment().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or make_engine(SiteConfig.from_environment().database_url)
    with engine.connect() as connection:
        _run(connection)
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
