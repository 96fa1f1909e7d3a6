"""The audit trail is tamper-evident: a hash chain the store's clock dates, proved by ``audit verify``; on
PostgreSQL the application's role can only read the trail and add to it."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.audit import GENESIS, chain_hash, record, record_for_patients, verify_chain
from db.migrate import upgrade
from db.models import EVENT_DETAILS_LIMIT, REASON_LIMIT, AuditLog, Patient, ReferenceOverride
from db.session import make_engine, make_session_factory
from services.accounts import SYSTEM
from tests.conftest import Databases
from tests.test_cli import monitor

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _record(store: sessionmaker[Session], *names: str) -> None:
    for name in names:
        with store.begin() as session:
            record(session, username=name, action="view", patient_key=None, details={"what": "worklist"})


def _around_the_triggers(engine: Engine, statement: str) -> None:
    """Run ``statement`` on the trail as someone with the store's file or its superuser would: with the
    append-only triggers set aside (dropped and made again on SQLite, disabled on PostgreSQL)."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            connection.execute(text(statement))
            connection.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
            return
        triggers = connection.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'")
        ).all()
        for name, _ in triggers:
            connection.execute(text(f"DROP TRIGGER {name}"))
        connection.execute(text(statement))
        for _, sql in triggers:
            connection.execute(text(sql))


def _verify(url: str) -> tuple[int, str]:
    done = monitor("audit", "verify", url=url)
    return done.returncode, done.stdout + done.stderr


def test_the_chain_hashes_each_row_s_content_as_one_json_list() -> None:
    content = [7, "2026-12-02T09:30:00.000000Z", "Zoë\n", 'vi"ew', 12, '{"what": "ünï\\u0000"}']
    expected = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    import hashlib

    assert (
        chain_hash(
            GENESIS, id=7, at=content[1], username="Zoë\n", action='vi"ew', patient_id=12, details=content[5]
        )
        == hashlib.sha256((GENESIS + expected).encode()).hexdigest()
    )


def test_a_row_changed_removed_or_slipped_in_around_the_triggers_is_named_by_verify(
    store: sessionmaker[Session], engine: Engine, db_url: str
) -> None:
    _record(store, "alice", "bob", "carol", "dave", "erin")
    code, said = _verify(db_url)
    assert code == 0 and "audit trail intact: 5 rows verified" in said, said
    _around_the_triggers(engine, "UPDATE audit_log SET username = 'mallory' WHERE id = 2")
    code, said = _verify(db_url)
    assert code == 5, said
    assert "audit trail broken: row 2 at " in said and "1 of 5 rows break the chain" in said, said
    # Rewriting the row's hash as well moves the break to the row after it, which names it.
    with engine.connect() as connection:
        row = connection.execute(
            select(AuditLog.id, AuditLog.at, AuditLog.username, AuditLog.action, AuditLog.details).where(
                AuditLog.id == 2
            )
        ).one()
        before = connection.execute(select(AuditLog.row_hash).where(AuditLog.id == 1)).scalar_one()
    forged = chain_hash(
        before,
        id=2,
        at=row.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        username="mallory",
        action=row.action,
        patient_id=None,
        details=row.details,
    )
    _around_the_triggers(engine, f"UPDATE audit_log SET row_hash = '{forged}' WHERE id = 2")
    code, said = _verify(db_url)
    assert code == 5 and "audit trail broken: row 3 at " in said, said
    _around_the_triggers(engine, "DELETE FROM audit_log WHERE id = 4")
    code, said = _verify(db_url)
    assert code == 5 and "also row 5 at " in said and "2 of 4 rows break the chain" in said, said


def test_a_row_written_around_the_application_breaks_the_chain(
    store: sessionmaker[Session], engine: Engine, db_url: str
) -> None:
    _record(store, "alice")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_log (at, username, action, details) "
                "VALUES (CURRENT_TIMESTAMP, 'mallory', 'view', '{}')"
            )
        )
    _record(store, "bob")
    with store() as session:
        state = verify_chain(session)
    assert (state.rows, state.broken) == (3, 1)
    assert state.breaks[0].id == 2 and "no hash" in state.breaks[0].problem


def test_a_stored_row_cannot_be_replaced(store: sessionmaker[Session], engine: Engine) -> None:
    _record(store, "alice")
    replace = (
        "REPLACE INTO audit_log (id, at, username, action, details) "
        "VALUES (1, CURRENT_TIMESTAMP, 'mallory', 'view', '{}')"
        if engine.dialect.name == "sqlite"
        else "INSERT INTO audit_log (id, at, username, action, details) "
        "VALUES (1, now(), 'mallory', 'view', '{}') ON CONFLICT (id) DO UPDATE SET username = 'mallory'"
    )
    with pytest.raises(DBAPIError, match="the audit trail is append-only"), engine.begin() as connection:
        connection.execute(text(replace))
    with store() as session:
        assert session.scalars(select(AuditLog.username)).all() == ["alice"]
        assert verify_chain(session).intact


def test_a_row_takes_its_time_from_the_store_s_clock_not_the_writer_s(
    store: sessionmaker[Session], engine: Engine
) -> None:
    with store.begin() as session:
        record(session, at=datetime(2020, 1, 1, tzinfo=UTC), username="alice", action="view")
    back_dated = text(
        "INSERT INTO audit_log (at, username, action, details) VALUES ('2020-01-01 00:00:00', 'mallory', "
        "'view', '{}')"
    )
    if engine.dialect.name == "sqlite":  # a trigger cannot change the row it inserts: it refuses it
        with pytest.raises(IntegrityError, match="takes its time from the clock"), engine.begin() as c:
            c.execute(back_dated)
    else:  # the store's trigger writes its own time
        with engine.begin() as connection:
            connection.execute(back_dated)
    with store() as session:
        times = session.scalars(select(AuditLog.at)).all()
    yesterday = datetime.now(UTC) - timedelta(days=1)
    assert times and all(at > yesterday for at in times)


def test_many_rows_at_once_and_writers_at_the_same_time_keep_one_chain(
    store: sessionmaker[Session],
) -> None:
    with store.begin() as session:
        record(session, username="admin", action="user_add", details={"user": "nurse"})
        record_for_patients(session, username="admin", action="assign_team", patient_keys=range(1, 5001))
        record(session, username="admin", action="view", patient_key=3)
    failures: list[BaseException] = []

    def write(name: str) -> None:
        try:
            _record(store, *[name] * 25)
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)

    writers = [threading.Thread(target=write, args=(name,)) for name in ("alice", "bob", "carol")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert not failures
    with store() as session:
        state = verify_chain(session)
        ids = session.scalars(select(AuditLog.id).where(AuditLog.action == "assign_team")).all()
    assert state.intact and state.rows == 5002 + 75
    assert len(ids) == 5000 and ids == sorted(ids)
    # A later verification reads only the rows added since, and still finds a change at its boundary.
    _record(store, "dave")
    with store() as session:
        assert verify_chain(session, after=state).rows == state.rows + 1


def test_a_long_transaction_does_not_hold_the_trail_for_others_until_it_commits(
    store: sessionmaker[Session], engine: Engine
) -> None:
    """An import records itself when it starts and commits minutes later: the trail's lock is taken only as
    a transaction commits, so views recorded meanwhile do not wait for it (PostgreSQL; SQLite has a
    single writer anyway)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one transaction write at a time")
    with store.begin() as long:
        record(long, username="importer", action="import", details={"batch": 1})
        long.execute(select(func.count()).select_from(Patient))
        with store.begin() as meanwhile:
            meanwhile.execute(text("SET LOCAL lock_timeout = '20s'"))  # a wait would fail, not hang
            record(meanwhile, username="alice", action="view")
    with store() as session:
        assert session.scalars(select(AuditLog.username).order_by(AuditLog.id)).all() == ["alice", "importer"]
        assert verify_chain(session).intact


def test_an_upgraded_store_s_trail_is_chained_by_the_migration(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0015_preliminary_corrections", timezone="UTC")
        with engine.begin() as connection:
            for n, at in enumerate(("2026-01-05 08:00:00", "2026-01-05 08:00:00.5", "2026-02-01 10:11:12")):
                connection.execute(
                    text(
                        "INSERT INTO audit_log (at, username, action, patient_id, details) "
                        "VALUES (:at, :name, 'view', :patient, :details)"
                    ),
                    {"at": at, "name": f"user{n}", "patient": n or None, "details": '{"what": "é"}'},
                )
        upgrade(engine, timezone="UTC")
        store = make_session_factory(engine)
        _record(store, "alice")
        with store() as session:
            state = verify_chain(session)
        assert state.intact and state.rows == 4
    finally:
        engine.dispose()


def test_over_long_text_is_refused_with_its_limit_and_nothing_is_written(
    store: sessionmaker[Session],
) -> None:
    from services.patient_actions import acknowledge, add_event, set_patient_range

    with store.begin() as session:
        session.add(Patient(id=1, mrn="M1", assigning_authority="", created_at=NOW))
    common = {"viewer": SYSTEM, "patient_key": 1, "now": NOW}
    with pytest.raises(ValueError, match="a reason is at most 2,000 characters"):
        set_patient_range(
            store, analyte="anc", low=1.0, high=None, reason="x" * 5_000_000, timezone="UTC", **common
        )
    with pytest.raises(ValueError, match="an event's details are at most 16,000 characters"):
        add_event(
            store,
            kind="note",
            start=NOW,
            end=None,
            label="note",
            details="x" * (EVENT_DETAILS_LIMIT + 1),
            timezone="UTC",
            **common,
        )
    with pytest.raises(ValueError, match="a comment is at most 2,000 characters"):
        acknowledge(store, comment="x" * (REASON_LIMIT + 1), **common)
    with pytest.raises(ValueError, match="too long"), store.begin() as session:
        record(session, username="admin", action="settings", details={"note": "x" * 20_000})
    with store() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 0
        assert session.scalar(select(func.count()).select_from(ReferenceOverride)) == 0
    # At the limit, accepted.
    set_patient_range(
        store, analyte="anc", low=1.0, high=None, reason="y" * REASON_LIMIT, timezone="UTC", **common
    )
    with store() as session:
        assert session.scalar(select(ReferenceOverride.reason)) == "y" * REASON_LIMIT


@pytest.fixture
def _fresh_caches() -> Iterator[None]:
    """The dashboard's cached store and reads, emptied before and after (they outlive an AppTest run)."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def test_the_audit_page_shows_the_chain_intact_or_its_first_broken_row(
    store: sessionmaker[Session], engine: Engine, db_url: str, monkeypatch, _fresh_caches: None
) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.test_dashboard import _app

    monkeypatch.setenv("MONITOR_DATABASE_URL", db_url)
    monkeypatch.setenv("MONITOR_SEED_DEMO", "0")
    _record(store, "alice", "bob", "carol")

    def audit_page() -> AppTest:
        at = _app().run()
        at.switch_page("app_pages/audit.py").run()
        assert not at.exception
        return at

    at = audit_page()
    assert at.success[0].value.startswith("Hash chain intact: ") and "rows verified" in at.success[0].value
    _around_the_triggers(engine, "UPDATE audit_log SET details = '{}' WHERE id = 2")
    at = audit_page()
    assert at.error[0].value.startswith("Hash chain broken at row 2 (")


@pytest.fixture
def roles(databases: Databases) -> Iterator[tuple[str, str, str]]:
    """A PostgreSQL database owned by a role of its own, and an application role: their URLs (owner, app)
    and the app role's name. Both roles are dropped after."""
    databases.require_postgres()
    assert databases.admin_url is not None
    suffix = uuid.uuid4().hex[:8]
    owner, app = f"monitor_owner_{suffix}", f"monitor_app_{suffix}"
    admin = create_engine(databases.admin_url, isolation_level="AUTOCOMMIT")
    url = databases.new_postgres()
    name = make_url(url).database
    try:
        with admin.connect() as connection:
            for role in (owner, app):
                connection.execute(text(f"CREATE ROLE {role} LOGIN"))
            connection.execute(text(f'ALTER DATABASE "{name}" OWNER TO {owner}'))
        as_owner = make_url(url).set(username=owner).render_as_string(hide_password=False)
        as_app = make_url(url).set(username=app).render_as_string(hide_password=False)
        yield as_owner, as_app, app
    finally:
        databases.drop(url)
        with admin.connect() as connection:
            for role in (app, owner):
                connection.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def test_the_application_s_role_adds_to_the_trail_and_reads_it_but_cannot_change_it(roles) -> None:
    from services.audit import record_export

    as_owner, as_app, app = roles
    assert monitor("db", "upgrade", url=as_owner).returncode == 0
    granted = monitor("db", "grant-app-role", app, url=as_owner)
    assert granted.returncode == 0, granted.stderr
    assert monitor("db", "grant-app-role", app.replace("app", "nobody"), url=as_owner).returncode == 2
    engine = make_engine(as_app)
    try:
        store = make_session_factory(engine)
        record_export(store, viewer=SYSTEM, what="worklist CSV (1 rows)", now=NOW)
        with store.begin() as session:  # every right on the data itself
            session.add(Patient(id=1, mrn="M1", assigning_authority="", created_at=NOW))
            session.flush()
            session.execute(text("UPDATE patient SET name = 'A' WHERE id = 1"))
            session.execute(text("DELETE FROM patient WHERE id = 1"))
        for change in (
            "UPDATE audit_log SET username = 'mallory'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER USER",
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
            "DROP TABLE audit_log",
        ):
            with pytest.raises(DBAPIError, match="permission denied|must be owner"), engine.begin() as c:
                c.execute(text(change))
        with store() as session:
            assert session.scalars(select(AuditLog.username)).all() == [SYSTEM.username]
    finally:
        engine.dispose()
    code, said = _verify(as_app)
    assert code == 0 and "1 rows verified" in said, said
