"""Fixtures: every store test runs on SQLite and, when MONITOR_TEST_POSTGRES_URL is set, on PostgreSQL.

The PostgreSQL database is created fresh for the run and dropped after; each test starts from an empty
schema in it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from db.migrate import upgrade
from db.session import make_engine, make_session_factory

POSTGRES_ENV = "MONITOR_TEST_POSTGRES_URL"
ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def pytest_configure(config: pytest.Config) -> None:
    """Tests are written for a site in UTC unless they set another zone (``monkeypatch.setenv``): a
    developer's own ``MONITOR_TIMEZONE`` would otherwise move every time read without an offset, in this
    process and in the servers and commands the tests start. Set before any fixture, of any scope, runs."""
    os.environ["MONITOR_TIMEZONE"] = "UTC"


def pytest_report_header(config: pytest.Config) -> str:
    admin_url = os.environ.get(POSTGRES_ENV, "").strip()
    if not admin_url:
        return f"PostgreSQL: not configured ({POSTGRES_ENV} unset): [postgresql] tests will be skipped"
    shown = make_url(admin_url)
    return f"PostgreSQL: a fresh database per run on {shown.host}:{shown.port}: [postgresql] tests will run"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    admin_url = os.environ.get(POSTGRES_ENV, "").strip()
    if not admin_url:
        pytest.skip(
            f"PostgreSQL tests skipped: set {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)"
        )
    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each engine (no schema yet)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'monitor.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database of each kind."""
    made = make_engine(db_url)
    yield made
    made.dispose()


@pytest.fixture
def store(engine: Engine) -> sessionmaker[Session]:
    """A migrated, empty store of each kind."""
    upgrade(engine, timezone="UTC")
    return make_session_factory(engine)
