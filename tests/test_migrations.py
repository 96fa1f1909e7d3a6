"""One migration history for both databases, agreeing with the models, reversible."""

from __future__ import annotations

import importlib.util
import types
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select

from db.migrate import current_revision, downgrade, ensure_current, head_revision, upgrade
from db.models import Base, Patient
from tests.conftest import ROOT


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    upgrade(engine, timezone="UTC")
    assert _differences(engine) == []


def test_upgrade_downgrade_and_upgrade_again(engine: Engine) -> None:
    upgrade(engine, timezone="UTC")
    assert current_revision(engine) == head_revision()
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine, timezone="UTC")
    assert current_revision(engine) == head_revision()
    assert _differences(engine) == []


def test_an_empty_sqlite_store_is_created_on_first_use(tmp_path) -> None:
    from db.session import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'monitor.db'}")
    ensure_current(engine, timezone="UTC")
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_times_are_stored_in_utc_and_read_back_aware(store) -> None:
    paris_winter = datetime(2026, 1, 5, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    with store.begin() as session:
        session.add(Patient(mrn="T1", assigning_authority="", created_at=paris_winter))
    with store() as session:
        stored = session.scalar(select(Patient.created_at))
    assert stored == datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    assert stored.utcoffset() == timedelta(0)


def test_an_upgrade_recomputes_the_status_a_migration_adds_to(store, engine: Engine) -> None:
    from db.accounts import SYSTEM
    from db.queries import patient_list
    from services.imports import ImportOptions, import_path
    from tests.conftest import DATA

    import_path(
        store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    downgrade(engine, "0004_censored_results")  # as if the store came from before grades existed
    upgrade(engine, timezone="UTC")
    with store() as session:
        listed = patient_list(session, viewer=SYSTEM).set_index("patient_id")
    assert listed.loc["MRN1001", ["latest_wbc_grade", "latest_anc_grade"]].tolist() == [1, 3]


# 0013: flags and explanations become JSON lists, the unread latest_*_low columns go, and the audit trail's
# actions are checked. Run with alembic itself rather than db.migrate.upgrade, which recomputes every
# patient's status afterwards and would overwrite the rows carried over (these patients have no results).
BEFORE_JSON = "0012_batch_zone"
SENTENCES = ["WBC 3.1 below 4.0 (CTCAE grade 1)", 'below for 14 days, "persistent" ≥ 10 days']


def _alembic(engine: Engine, step: str, revision: str) -> None:
    from alembic import command

    from db.migrate import alembic_config

    getattr(command, step)(alembic_config(engine), revision)


def _columns(engine: Engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}


def _revision_0013() -> types.ModuleType:
    """Migration 0013 as a module (its file name is not an importable name)."""
    path = next((ROOT / "migrations" / "versions").glob("*-0013_*.py"))
    spec = importlib.util.spec_from_file_location("revision_0013", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _store_at_0012(engine: Engine) -> None:
    """A store at 0012 with two statuses (one flagged, one not) and a trail holding every action and every
    spelling the command line has used for a person."""
    import json

    from sqlalchemy import text

    # Every action a store at 0012 can hold: 0013's own list, frozen with it (a later action the code adds
    # does not exist in such a store).
    AUDIT_ACTIONS = _revision_0013().AUDIT_ACTIONS

    upgrade(engine, BEFORE_JSON, timezone="UTC")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO patient (id, mrn, assigning_authority, is_synthetic, created_at) VALUES "
                "(1, 'M1', '', false, '2026-01-05 08:00:00'), (2, 'M2', '', false, '2026-01-05 08:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO patient_status (patient_id, n_panels, flags, explanations, computed_at, "
                "latest_wbc_low, latest_anc_low) VALUES (1, 3, 'leukopenia,persistent', :sentences, "
                "'2026-01-05 08:00:00', 4.0, 1.8), (2, 0, '', '[]', '2026-01-05 08:00:00', NULL, NULL)"
            ),
            {"sentences": json.dumps(SENTENCES)},
        )
        for n, action in enumerate(AUDIT_ACTIONS):
            name = ("alice", "cli:alice", "alice (command line)")[n % 3]
            connection.execute(
                text(
                    "INSERT INTO audit_log (at, username, action, details) VALUES (:at, :name, :action, '{}')"
                ),
                {"at": "2026-01-05 08:00:00", "name": name, "action": action},
            )


def _status_rows(engine: Engine) -> list[tuple[object, ...]]:
    from sqlalchemy import text

    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text("SELECT patient_id, flags, explanations FROM patient_status ORDER BY patient_id")
            )
        ]


def _trail(engine: Engine) -> list[tuple[object, ...]]:
    from sqlalchemy import text

    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(text("SELECT username, action FROM audit_log ORDER BY id"))
        ]


def test_0013_carries_flags_and_explanations_over_as_json_lists_and_back(engine: Engine) -> None:
    import json

    from sqlalchemy.orm import Session

    from db.models import PatientStatus

    _store_at_0012(engine)
    before, trail = _status_rows(engine), _trail(engine)
    assert before[0][1:] == ("leukopenia,persistent", json.dumps(SENTENCES))
    _alembic(engine, "upgrade", "head")
    with Session(engine) as session:
        stored = session.execute(
            select(PatientStatus.patient_id, PatientStatus.flags, PatientStatus.explanations).order_by(
                PatientStatus.patient_id
            )
        ).all()
    assert [tuple(row) for row in stored] == [(1, ["leukopenia", "persistent"], SENTENCES), (2, [], [])]
    assert not {"latest_wbc_low", "latest_anc_low", "latest_alc_low"} & _columns(engine, "patient_status")
    assert _trail(engine) == trail
    assert _differences(engine) == []
    _alembic(engine, "downgrade", BEFORE_JSON)
    assert _status_rows(engine) == before  # the same text, byte for byte
    assert {"latest_wbc_low", "latest_anc_low", "latest_alc_low"} <= _columns(engine, "patient_status")
    assert _trail(engine) == trail
    _alembic(engine, "upgrade", "head")
    assert current_revision(engine) == head_revision()


def test_a_status_written_without_flags_has_empty_lists_by_default(store) -> None:
    from sqlalchemy import text

    from db.models import PatientStatus

    with store.begin() as session:
        session.add(Patient(id=1, mrn="M1", assigning_authority="", created_at=datetime.now(UTC)))
        session.flush()
        session.execute(
            text("INSERT INTO patient_status (patient_id, n_panels, computed_at) VALUES (1, 0, :now)"),
            {"now": datetime(2026, 1, 5, 8, tzinfo=UTC).replace(tzinfo=None)},
        )
    with store() as session:
        assert session.execute(select(PatientStatus.flags, PatientStatus.explanations)).one() == ([], [])


@pytest.mark.parametrize("revision", ["head", BEFORE_JSON])
def test_the_trail_stays_append_only_across_0013_both_ways(engine: Engine, revision: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    _store_at_0012(engine)
    _alembic(engine, "upgrade", "head")
    if revision != "head":
        _alembic(engine, "downgrade", revision)
    trail = _trail(engine)
    for change in ("UPDATE audit_log SET username = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="the audit trail is append-only"), engine.begin() as connection:
            connection.execute(text(change))
    assert _trail(engine) == trail


def test_from_0013_the_store_refuses_an_action_outside_the_vocabulary(engine: Engine) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    # At the store's own time: from 0017 SQLite refuses an audit row written at another.
    insert = text(
        "INSERT INTO audit_log (at, username, action, details) VALUES (CURRENT_TIMESTAMP, 'a', :a, '')"
    )
    _store_at_0012(engine)
    _alembic(engine, "upgrade", "head")
    with pytest.raises(IntegrityError, match="ck_audit_log_action"), engine.begin() as connection:
        connection.execute(insert, {"a": "download"})
    _alembic(engine, "downgrade", BEFORE_JSON)  # and the check goes with a downgrade
    with engine.begin() as connection:
        connection.execute(insert, {"a": "download"})


def test_a_trail_holding_an_unknown_action_is_named_and_nothing_changes(engine: Engine) -> None:
    from sqlalchemy import text

    _store_at_0012(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_log (at, username, action, details) "
                "VALUES ('2026-01-05 08:00:00', 'a', 'purge', '')"
            )
        )
    before = _status_rows(engine)
    with pytest.raises(RuntimeError, match=r"outside its vocabulary \(purge\)"):
        _alembic(engine, "upgrade", "head")
    assert current_revision(engine) == BEFORE_JSON and _status_rows(engine) == before
