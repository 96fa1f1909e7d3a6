"""Fixtures: every store test runs on SQLite and, when MONITOR_TEST_POSTGRES_URL is set, on PostgreSQL.

Each test gets a database of its own: a SQLite file in its ``tmp_path``, or a PostgreSQL database created
for it and dropped after. Migrating a store takes far longer than copying one, so the schema is migrated
once per run into a template (a SQLite file, a PostgreSQL template database) and a test that asks for a
migrated store (``store``, ``upgraded``) gets a copy of it; a test that asks only for ``db_url`` or
``engine`` gets an empty database. Under pytest-xdist each worker keeps its own templates.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
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
KINDS = ("sqlite", "postgresql")

# Builds a template store: given the URL of an empty database and a folder for its files, fills it.
Build = Callable[[str, Path], None]


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
    return f"PostgreSQL: a fresh database per test on {shown.host}:{shown.port}: [postgresql] tests will run"


class Databases:
    """The run's databases: empty ones and copies of templates, each made for a test (or the run) and
    dropped after it; the templates are built on first use and kept for the run."""

    def __init__(self, folder: Path, admin_url: str | None) -> None:
        self.folder = folder
        self.admin_url = admin_url
        self.prefix = f"monitor_test_{uuid.uuid4().hex[:12]}"
        self._admin: Engine | None = None
        self._numbers = itertools.count(1)
        self._templates: dict[tuple[str, str], str] = {}
        self._made: list[str] = []
        self.migrated_copies: set[str] = set()

    # --- PostgreSQL through the administrator's connection (CREATE and DROP DATABASE run outside a
    # transaction) ---

    def require_postgres(self) -> None:
        """Skip the test unless PostgreSQL is configured."""
        if self.admin_url is None:
            pytest.skip(
                f"PostgreSQL tests skipped: set {POSTGRES_ENV} "
                "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)"
            )

    def _execute(self, statement: str) -> None:
        self.require_postgres()
        assert self.admin_url is not None
        if self._admin is None:
            self._admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as connection:
            connection.execute(text(statement))

    def _postgres(self, name: str) -> str:
        assert self.admin_url is not None
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def new_postgres(self, template: str | None = None) -> str:
        """A new PostgreSQL database (a copy of ``template`` if given), dropped by `close`."""
        name = f"{self.prefix}_{next(self._numbers)}"
        self._execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self._made.append(name)
        return self._postgres(name)

    def drop(self, url: str) -> None:
        """Drop a database made here (a SQLite file is left to its temporary folder)."""
        self.migrated_copies.discard(url)
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql" and parsed.database in self._made:
            # FORCE: a test may leave an engine with open connections behind.
            self._execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
            self._made.remove(parsed.database)

    def close(self) -> None:
        for name in reversed(self._made):
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.clear()
        if self._admin is not None:
            self._admin.dispose()

    # --- templates ---

    def template(self, kind: str, name: str, build: Build) -> str:
        """The template ``name`` of ``kind`` (a SQLite file's path, a PostgreSQL database's name): an
        empty database filled by ``build`` the first time it is asked for."""
        key = (kind, name)
        if key not in self._templates:
            folder = self.folder / f"{kind}-{name}"
            folder.mkdir()
            if kind == "sqlite":
                path = folder / "template.db"
                build(f"sqlite:///{path}", folder)
                # Fold the write-ahead log into the file and close it, so that copying the file alone
                # copies the whole store.
                with contextlib.closing(sqlite3.connect(path)) as connection:
                    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                    assert not leftover.exists(), f"{leftover} is still there: the template is not whole"
                self._templates[key] = str(path)
            else:
                url = self.new_postgres()
                build(url, folder)
                database = make_url(url).database
                assert database is not None
                # CREATE DATABASE ... TEMPLATE refuses a template anyone is connected to.
                self._execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                )
                self._templates[key] = database
        return self._templates[key]

    def copy(self, kind: str, template: str, path: Path) -> str:
        """A new database holding what ``template`` holds (for SQLite, the file at ``path``)."""
        if kind == "sqlite":
            shutil.copyfile(template, path)
            return f"sqlite:///{path}"
        return self.new_postgres(template)

    def migrated(self, kind: str) -> str:
        """The template of an empty store migrated to the head revision."""
        return self.template(kind, "migrated", _migrate)


def _migrate(url: str, folder: Path) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine, timezone="UTC")
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """This run's databases and templates (PostgreSQL ones are dropped at the end)."""
    made = Databases(tmp_path_factory.mktemp("templates"), os.environ.get(POSTGRES_ENV, "").strip() or None)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="session")
def postgres_url(databases: Databases) -> str:
    """A fresh PostgreSQL database for this test run (for this worker, under pytest-xdist), dropped at
    the end."""
    return databases.new_postgres()


@pytest.fixture(params=KINDS)
def db_kind(request: pytest.FixtureRequest, databases: Databases) -> str:
    """Each kind of database, SQLite and PostgreSQL (skipped when MONITOR_TEST_POSTGRES_URL is unset)."""
    if request.param == "postgresql":
        databases.require_postgres()
    return str(request.param)


@pytest.fixture
def _migrated() -> None:
    """Asks ``db_url`` for a store migrated to head instead of an empty database (see `store`)."""


@pytest.fixture
def db_url(
    db_kind: str, databases: Databases, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """An empty database on each engine (no schema yet); the same database, migrated, when the test also
    asks for ``store`` or ``upgraded``."""
    path = tmp_path / "monitor.db"
    if "_migrated" in request.fixturenames:
        url = databases.copy(db_kind, databases.migrated(db_kind), path)
        databases.migrated_copies.add(url)
    elif db_kind == "sqlite":
        url = f"sqlite:///{path}"
    else:
        url = databases.new_postgres()
    yield url
    databases.drop(url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database of each kind (migrated when the test also asks for ``store``)."""
    made = make_engine(db_url)
    yield made
    made.dispose()


@pytest.fixture
def store(engine: Engine, db_url: str, databases: Databases, _migrated: None) -> sessionmaker[Session]:
    """A migrated, empty store of each kind (on the database of ``db_url`` and ``engine``)."""
    if db_url not in databases.migrated_copies:  # asked for only once the test had begun
        upgrade(engine, timezone="UTC")
    return make_session_factory(engine)


@pytest.fixture
def upgraded(db_url: str, _migrated: None) -> str:
    """The URL of a store an administrator has upgraded to head, empty (PostgreSQL is never upgraded
    implicitly); the same database as ``db_url``'s."""
    return db_url


@pytest.fixture
def store_copy(db_kind: str, databases: Databases, tmp_path: Path) -> Iterator[Callable[[str, Build], str]]:
    """``store_copy(name, build)``: the URL of a new database of each kind holding what ``build`` put
    into an empty one. ``build`` runs once per run and kind; each test gets its own copy, dropped after."""
    made: list[str] = []

    def copy(name: str, build: Build) -> str:
        template = databases.template(db_kind, name, build)
        made.append(databases.copy(db_kind, template, tmp_path / f"{name}.db"))
        return made[-1]

    yield copy
    for url in made:
        databases.drop(url)


@pytest.fixture
def demo_copy(store_copy) -> Iterator[Callable[[datetime], sessionmaker[Session]]]:
    """``demo_copy(now)``: a store of each kind holding the 60-patient demo cohort (seed 7, site zone UTC)
    as seeded at ``now``, with its accounts. Seeding fits every forecast and takes seconds, so it runs once
    per run, kind and ``now``; each test gets its own copy."""
    engines: list[Engine] = []

    def build(now: datetime) -> Build:
        def seeded(url: str, folder: Path) -> None:
            from services.admin import seed_demo

            engine = make_engine(url)
            try:
                upgrade(engine, timezone="UTC")
                seed_demo(make_session_factory(engine), patients=60, seed=7, now=now, timezone="UTC")
            finally:
                engine.dispose()

        return seeded

    def copy(now: datetime) -> sessionmaker[Session]:
        engines.append(make_engine(store_copy(f"demo-60-{now:%Y%m%dT%H%M%S}", build(now))))
        return make_session_factory(engines[-1])

    yield copy
    for engine in engines:
        engine.dispose()


@pytest.fixture
def imported_store(tmp_path: Path, monkeypatch) -> str:
    """A SQLite store holding tests/data/canonical-good.csv, which the dashboard's pages open
    (``MONITOR_DATABASE_URL``)."""
    from db.store import open_store
    from services.imports import ImportOptions, import_path

    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    import_path(
        open_store(url, timezone="UTC"),
        DATA / "canonical-good.csv",
        options=ImportOptions(imported_by="test", site_timezone="UTC"),
    )
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    return url


@pytest.fixture
def offered_downloads(monkeypatch) -> dict[str, object]:
    """What each page's download buttons would serve, by label: the callable Streamlit runs when the file
    is asked for (a click, or a request sent without one), captured as the page draws the button."""
    offered: dict[str, object] = {}
    import streamlit as st

    real = st.download_button

    def capture(label, data, *args, **kwargs):
        offered[label] = data
        return real(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", capture)
    return offered
