"""One migration history for both databases, agreeing with the models, reversible."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select

from db.migrate import current_revision, downgrade, ensure_current, head_revision, upgrade
from db.models import Base, Patient


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    upgrade(engine)
    assert _differences(engine) == []


def test_upgrade_downgrade_and_upgrade_again(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _differences(engine) == []


def test_an_empty_sqlite_store_is_created_on_first_use(tmp_path) -> None:
    from db.session import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'monitor.db'}")
    ensure_current(engine)
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

    import_path(store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="test"))
    downgrade(engine, "0004_censored_results")  # as if the store came from before grades existed
    upgrade(engine)
    with store() as session:
        listed = patient_list(session, viewer=SYSTEM).set_index("patient_id")
    assert listed.loc["MRN1001", ["latest_wbc_grade", "latest_anc_grade"]].tolist() == [1, 3]
