"""The per-patient, per-import and alert read paths use an index on the large tables: no full scan of them.

Every SELECT these paths send is captured with its parameters and handed back to the database's own
planner. SQLite: ``EXPLAIN QUERY PLAN`` must not say ``SCAN`` of a large table. PostgreSQL: on a test
store this small its planner would rightly scan everything, so sequential scans are priced out first
(``enable_seqscan = off``): a plan that still holds a ``Seq Scan`` of a large table has no index it can use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from db.accounts import SYSTEM, viewer_named
from db.queries import find_patient, patient_events, patient_results
from db.status import refresh_patient_status
from services.admin import seed_demo
from services.imports import ImportOptions, import_path
from services.patients import patient_cycles
from services.worklist import alerts
from tests.conftest import DATA

LARGE = ("result", "panel", "clinical_event", "status_change", "audit_log", "other_observation")
# Real feeds through the real importer: new patients and panels, known ones, corrections, derived counts.
FEEDS = ("hl7/correction-and-deletion.hl7", "hl7/local-codes-percentages.hl7", "csv/wide.csv")


def _captured_selects(engine: Engine, run: Any) -> list[tuple[str, Any]]:
    """The SELECT statements (with their parameters) that ``run()`` sends through ``engine``."""
    statements: list[tuple[str, Any]] = []

    def capture(_connection, _cursor, statement, parameters, _context, executemany) -> None:
        if not executemany and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return statements


def _sqlite_scans(cursor: Any, statement: str, parameters: Any) -> list[str]:
    cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
    details = [row[-1] for row in cursor.fetchall()]
    return [d for d in details if any(d.startswith(f"SCAN {table}") for table in LARGE)]


def _postgres_scans(cursor: Any, statement: str, parameters: Any) -> list[str]:
    cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
    plan = cursor.fetchone()[0][0]["Plan"]
    found, nodes = [], [plan]
    while nodes:
        node = nodes.pop()
        if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in LARGE:
            found.append(f"Seq Scan on {node['Relation Name']}")
        nodes.extend(node.get("Plans", []))
    return found


@contextmanager
def _planner(engine: Engine) -> Iterator[Callable[[str, Any], list[str]]]:
    """A function giving the full scans of large tables in a statement's plan, on ``engine``'s database."""
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            cursor.execute("SET enable_seqscan = off")
        scans = _postgres_scans if postgres else _sqlite_scans
        try:
            yield lambda statement, parameters: scans(cursor, statement, parameters)
        finally:
            cursor.close()
            connection.rollback()


def test_read_paths_search_the_large_tables_by_index(store: sessionmaker[Session]) -> None:
    seed_demo(store, patients=20, seed=7, now=datetime(2026, 11, 30, tzinfo=UTC), timezone="UTC")
    engine = store.kw["bind"]

    def reads() -> None:
        for name in FEEDS:
            summary = import_path(
                store, DATA / name, options=ImportOptions(imported_by="test", site_timezone="UTC")
            )
            assert summary.error is None, summary.error
        with store.begin() as session:
            key = find_patient(session, "DEMO-0003", viewer=SYSTEM).id
            oncology = viewer_named(session, "oncology")
            patient_results(session, key, viewer=oncology, history=True)
            patient_events(session, key, viewer=oncology)
        now = datetime.now(UTC)
        patient_cycles(store, viewer=oncology, patient_key=key, timezone="UTC")
        alerts(store, viewer=oncology, since=now - timedelta(days=1), timezone="UTC", now=now)
        with store.begin() as session:
            refresh_patient_status(session, [key], now=now, timezone="UTC")

    selects = _captured_selects(engine, reads)
    assert len(selects) > 30
    with _planner(engine) as full_scans:
        scans = [(scan, statement[:200]) for statement, p in selects for scan in full_scans(statement, p)]
    assert not scans, scans


def test_the_check_itself_sees_a_full_scan(store: sessionmaker[Session]) -> None:
    """A query no index serves is caught (so that the test above can fail)."""
    engine = store.kw["bind"]

    def unindexed() -> None:
        with store.begin() as session:
            session.connection().exec_driver_sql("SELECT count(*) FROM result WHERE value_raw = '1'")

    [(statement, parameters)] = _captured_selects(engine, unindexed)
    with _planner(engine) as full_scans:
        assert full_scans(statement, parameters) in (["Seq Scan on result"], ["SCAN result"])
