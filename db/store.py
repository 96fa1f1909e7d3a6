"""Open the store: the engine, the session factory, and a schema brought up to date where allowed."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from db.migrate import ensure_current
from db.session import make_engine, make_session_factory


def open_store(url: str, *, timezone: str) -> sessionmaker[Session]:
    """Sessions on the configured store; an empty or old SQLite store is created or upgraded first (an
    upgrade recomputes the patient status, its cycle days counted in the site's ``timezone``)."""
    engine = make_engine(url)
    ensure_current(engine, timezone=timezone)
    return make_session_factory(engine)
