"""The one place an Engine is made, and the per-connection settings SQLite needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from db.frames import settle, settle_session

SQLITE_BUSY_TIMEOUT_MS = 10_000


class StoreUnusable(RuntimeError):
    """The store cannot be used as it is; the message names the store (``store``), then what is wrong and
    what to do (``problem``: all a browser is shown, without the store's path or host)."""

    def __init__(self, store: str, problem: str) -> None:
        super().__init__(f"{store}: {problem}")
        self.store, self.problem = store, problem


def store_name(url: URL) -> str:
    """How messages name a store: a SQLite file's path, else its URL without the password."""
    if url.get_backend_name() == "sqlite":
        return f"store {url.database or ':memory:'}"
    return f"store {url.render_as_string(hide_password=True)}"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the importer
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no committed import
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache: index inserts stay in memory
    cursor.close()


def _settle_before(connection: Connection, *_: Any) -> None:
    settle(connection.info)


def _settle_quietly(connection: Connection, *_: Any) -> None:
    settle(connection.info, quietly=True)


def _settle_on_reset(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
    settle(connection_record.info, quietly=True)


def _waits_for_writes_behind(engine: Engine) -> Engine:
    """A write left running by ``db.frames.bulk_insert`` finishes before the connection's next statement or
    commit (which raise its error) and before a rollback or the pool's reset (which undo it)."""
    event.listen(engine, "before_cursor_execute", _settle_before)
    event.listen(engine, "commit", _settle_before)
    event.listen(engine, "rollback", _settle_quietly)
    event.listen(engine.pool, "reset", _settle_on_reset)
    return engine


def make_engine(url: str) -> Engine:
    """An Engine for ``url``; for a SQLite file, its folder is created (inside an existing one) and WAL is
    switched on.

    Raises
    ------
    StoreUnusable
        When the SQLite file is there but empty (see `_refuse_empty`).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _waits_for_writes_behind(create_engine(url, pool_pre_ping=True))
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        folder = Path(parsed.database).parent
        if not folder.parent.exists():
            # A mistyped path must not grow a tree of folders: only the store's own folder is made.
            raise FileNotFoundError(f"no folder {folder.parent} to create the SQLite store's folder in")
        folder.mkdir(exist_ok=True)
        _refuse_empty(Path(parsed.database), parsed)
    engine = create_engine(url)
    event.listen(engine, "connect", _configure_sqlite)
    return _waits_for_writes_behind(engine)


def _refuse_empty(path: Path, url: URL) -> None:
    """An empty file where the store should be is a store whose content was lost, not a new one: made
    again, its data (and its users) would be gone unnoticed, and demo accounts seeded in their place.

    (A new store is never left empty: switching it to WAL on its first connection writes its header.)
    """
    if path.is_file() and path.stat().st_size == 0:
        log = path.with_name(path.name + "-wal")
        if not (log.is_file() and log.stat().st_size > 0):
            raise StoreUnusable(
                store_name(url), "the file is empty: move it away or delete it to start a new store"
            )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit; the caller owns each transaction.

    A write left running behind a session (``db.frames.bulk_insert``) finishes before it commits: its
    error stops the commit, and the session's transaction is then rolled back as any failed one.
    """
    factory = sessionmaker(engine, expire_on_commit=False)
    event.listen(factory, "before_commit", settle_session)
    return factory
