"""An import's rows reach the store in bulk on both databases, and a write left running behind the importer
belongs to its transaction: its failure fails the import and leaves the store as it was.

The statements are observed where the driver sends them (SQLite's trace of every statement it runs,
PostgreSQL's client protocol trace), so that a fall back to one INSERT per result cannot pass unseen.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.frames import STAGED_ROWS, bulk_insert, read_frame
from db.models import Panel, Result
from monitor.formats.csv_long import HEADER
from services.imports import ImportOptions, import_path

BY_TEST = ImportOptions(imported_by="test", site_timezone="UTC")
ANALYTES = (("wbc", "10^9/L", 4.0, 11.0), ("anc", "10^9/L", 1.8, 7.7), ("plt", "10^9/L", 150.0, 450.0))


def _canonical_csv(path: Path, panels: int) -> int:
    """A canonical CSV of ``panels`` panels of three results (20 patients, one panel a day each)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for panel in range(panels):
            patient, day = panel % 20, panel // 20
            when = f"2025-{1 + day // 28:02d}-{1 + day % 28:02d}T08:{patient:02d}:00Z"
            for number, (analyte, unit, low, high) in enumerate(ANALYTES):
                value = round(low * (0.5 + ((panel + number) % 10) / 10), 2)
                mrn, accession = f"BULK{patient:03d}", f"A{panel}"
                writer.writerow([mrn, when, analyte, value, unit, low, high, "LAB", accession, "final"])
    return panels * len(ANALYTES)


@contextmanager
def _traced(engine: Engine, folder: Path) -> Iterator[list[str]]:
    """Every statement the driver sends while the block runs (SQLite: each one it runs, an executemany's
    once a row; PostgreSQL: the protocol's messages as libpq traces them)."""
    sent: list[str] = []
    trace_file = folder / "libpq.trace"
    handle = trace_file.open("a")

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if engine.dialect.name == "sqlite":
            dbapi_connection.set_trace_callback(sent.append)
        else:
            dbapi_connection.pgconn.trace(handle.fileno())

    def on_checkin(dbapi_connection: Any, _record: Any) -> None:
        if engine.dialect.name == "sqlite":
            dbapi_connection.set_trace_callback(None)
        else:
            dbapi_connection.pgconn.untrace()

    event.listen(engine.pool, "checkout", on_checkout)
    event.listen(engine.pool, "checkin", on_checkin)
    try:
        yield sent
    finally:
        event.remove(engine.pool, "checkout", on_checkout)
        event.remove(engine.pool, "checkin", on_checkin)
        engine.dispose()  # no traced connection stays in the pool
        handle.close()
        sent.extend(trace_file.read_text(errors="replace").splitlines())


def _count(store: sessionmaker[Session], model: type[Any]) -> int:
    with store() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_an_import_writes_its_results_in_bulk_not_one_insert_a_result(
    store: sessionmaker[Session], engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "results.csv"
    results = _canonical_csv(path, 1_000)
    with _traced(engine, tmp_path) as sent:
        summary = import_path(store, path, options=BY_TEST)
    assert summary.accepted == results and not len(summary.rejected)
    assert _count(store, Result) == results

    into_result = [line for line in sent if "INSERT INTO result " in line or "INSERT INTO result(" in line]
    if engine.dialect.name == "sqlite":
        # The rows are bound into a staging table; the store's table receives them in one statement.
        assert len(into_result) == 1, into_result[:3]
        assert "SELECT" in into_result[0]
        assert sum("INSERT INTO temp.stage_result" in line for line in sent) >= results
    else:
        assert into_result == []
        assert sum("COPY result " in line for line in sent) == 1
        assert sum("COPY panel " in line for line in sent) == 1


def test_a_write_left_running_that_fails_fails_its_transaction(
    store: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "results.csv"
    _canonical_csv(path, STAGED_ROWS)  # enough rows to go through the staging table on SQLite
    import_path(store, path, options=BY_TEST)
    stored, panels = _count(store, Result), _count(store, Panel)

    with store() as session:
        columns = [c for c in Result.__table__.columns if c.name not in ("id", "superseded_at")]
        same = read_frame(session, select(*columns))
        assert len(same) >= STAGED_ROWS
    with store() as session, pytest.raises(IntegrityError):
        # The same (panel, analyte, version) again: the store's unique key refuses every row, in the
        # thread the write was left running in; the next statement raises it.
        bulk_insert(session, Result.__table__, same, behind=True)
        session.execute(select(1))
    with store() as session, pytest.raises(IntegrityError):
        bulk_insert(session, Result.__table__, same, behind=True)
        session.commit()
    with store() as session:
        # A rollback waits for it and undoes it, raising nothing more.
        bulk_insert(session, Result.__table__, same.assign(version=same["version"] + 1), behind=True)
        session.rollback()
    assert (_count(store, Result), _count(store, Panel)) == (stored, panels)

    with store() as session:
        bulk_insert(session, Result.__table__, same.assign(version=same["version"] + 1), behind=True)
        session.commit()
    assert _count(store, Result) == 2 * stored
    with store() as session:
        versions = pd.Series(session.scalars(select(Result.version)).all())
    assert versions.value_counts().to_dict() == {1: stored, 2: stored}


def test_postgresql_counts_the_results_afresh_after_a_large_import(
    store: sessionmaker[Session], engine: Engine, tmp_path: Path, monkeypatch
) -> None:
    """A large import refreshes PostgreSQL's statistics at once (the next reads are planned for the table as
    it is), a small one leaves them to autovacuum."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the planner's statistics are PostgreSQL's")
    from sqlalchemy import text

    import db.imports

    refresh_text = db.imports.text

    def counted() -> float:
        with engine.connect() as connection:
            return float(
                connection.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'result'::regclass"))
            )

    import services.imports

    ran: list[bool] = []
    refresh = services.imports.refresh_statistics
    monkeypatch.setattr(
        services.imports, "refresh_statistics", lambda *args: ran.append(refresh(*args)) or ran[-1]
    )
    small = tmp_path / "small.csv"
    _canonical_csv(small, 100)
    import_path(store, small, options=BY_TEST)
    assert ran == [False]  # 300 results: left to autovacuum
    large = tmp_path / "large.csv"
    results = _canonical_csv(large, 3_500)  # its first 300 results are the small file's
    assert import_path(store, large, options=BY_TEST).accepted == results - 300 >= 10_000
    assert ran == [False, True]
    assert counted() == _count(store, Result) == results
    # A failure to analyse (here: no such table) never fails an import that has landed.
    monkeypatch.setattr(db.imports, "text", lambda sql: refresh_text(sql.replace("panel,", "no_such_table,")))
    monkeypatch.setattr(db.imports, "RESULTS_TO_ANALYZE", 1_000)
    again = tmp_path / "again.csv"
    more = _canonical_csv(again, 6_720)  # twelve months of 28 days
    summary = import_path(store, again, options=BY_TEST)
    assert summary.error is None and summary.accepted == more - results
    assert ran == [False, True, False] and _count(store, Result) == more
