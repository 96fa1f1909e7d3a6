"""The per-patient and per-import read paths use an index on the large tables: no full scan of them
(SQLite's query planner, on a store holding the demo cohort)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import event

from db.accounts import SYSTEM, viewer_named
from db.demo import seed_demo
from db.queries import alerts, find_patient, patient_cycles, patient_events, patient_results
from db.status import refresh_patient_status
from db.store import open_store

LARGE = ("result", "panel", "clinical_event", "status_change", "audit_log", "other_observation")


def test_per_patient_reads_search_the_large_tables_by_index(tmp_path: Path) -> None:
    factory = open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    with factory.begin() as session:
        seed_demo(session, patients=20, seed=7, today=date(2026, 11, 30))
    statements: list[str] = []
    engine = factory.kw["bind"]

    @event.listens_for(engine, "connect")
    def _trace(connection: sqlite3.Connection, _record) -> None:
        connection.set_trace_callback(statements.append)

    engine.dispose()  # new connections get the trace callback
    with factory.begin() as session:
        key = find_patient(session, "DEMO-0003", viewer=SYSTEM).id
        oncology = viewer_named(session, "oncology")
        patient_results(session, key, viewer=oncology, history=True)
        patient_events(session, key, viewer=oncology)
        patient_cycles(session, key, viewer=oncology)
        alerts(session, since=datetime.now(UTC) - timedelta(days=1), viewer=oncology)
        refresh_patient_status(session, [key], now=datetime.now(UTC))
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) > 10
    scans = []
    with sqlite3.connect(tmp_path / "plans.db") as connection:
        for statement in selects:
            for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}"):
                detail = row[-1]
                if any(detail.startswith(f"SCAN {table}") for table in LARGE):
                    scans.append((detail, statement[:200]))
    assert not scans, scans
