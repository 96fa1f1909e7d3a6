"""The command line's recompute computes the status of a SQLite store in worker processes: the same
statuses and changes as one process computes."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select

import db.status_pool
import services.admin
from db.frames import read_frame
from db.models import PatientStatus, StatusChange
from services.admin import recompute_all

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _stored(store) -> tuple[pd.DataFrame, pd.DataFrame]:
    with store() as session:
        statuses = read_frame(session, select(PatientStatus).order_by(PatientStatus.patient_id))
        changes = read_frame(
            session, select(StatusChange).order_by(StatusChange.patient_id, StatusChange.id)
        ).drop(columns=["id"])
    return statuses, changes


def test_workers_recompute_what_one_process_does(demo_copy, monkeypatch, tmp_path) -> None:
    later = NOW + timedelta(days=3)  # three days on: cycle days, due windows and flags move
    # This process's main script is one that must not run again in a worker (as a test runner's can be,
    # after it ran a page of the dashboard): the workers start without it.
    script = tmp_path / "host.py"
    script.write_text("raise SystemExit('a worker ran the host process main script')\n")
    host = types.ModuleType("__main__")
    host.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", host)
    alone, beside = demo_copy(NOW), demo_copy(NOW)
    assert recompute_all(alone, now=later, timezone="UTC") == 69  # the demo cohort and its showcase patients
    # Workers from the first panel, and passes of a few patients each, so that two workers share them.
    monkeypatch.setattr(db.status_pool, "BESIDE_FROM_PANELS", 0)
    monkeypatch.setattr(services.admin, "status_workers", lambda: 2)
    pools: list[int] = []

    class Counted(db.status_pool.ProcessPoolExecutor):
        def __init__(self, max_workers: int, **kwargs) -> None:
            pools.append(max_workers)
            super().__init__(max_workers, **kwargs)

    monkeypatch.setattr(db.status_pool, "ProcessPoolExecutor", Counted)
    assert recompute_all(beside, now=later, timezone="UTC", beside=True) == 69
    # SQLite: two workers. PostgreSQL: computed in this process (its server shares the cores).
    assert pools == ([2] if beside.kw["bind"].dialect.name == "sqlite" else [])
    statuses, changes = _stored(alone)
    pd.testing.assert_frame_equal(_stored(beside)[0], statuses)
    pd.testing.assert_frame_equal(_stored(beside)[1], changes)
    assert statuses["computed_at"].eq(pd.Timestamp(later)).all()


def test_a_failed_write_rolls_the_whole_recompute_back_without_waiting_for_the_workers(
    demo_copy, monkeypatch
) -> None:
    store = demo_copy(NOW)
    if store.kw["bind"].dialect.name != "sqlite":
        pytest.skip("PostgreSQL recomputes in one process (above)")
    before = _stored(store)
    monkeypatch.setattr(db.status_pool, "BESIDE_FROM_PANELS", 0)
    monkeypatch.setattr(services.admin, "status_workers", lambda: 2)
    written: list[int] = []
    store_status = db.status_pool.store_status

    def refused_second(session, part, rows, **kwargs) -> None:
        written.append(len(part))
        if len(written) == 2:
            raise RuntimeError("the store refused the write")
        store_status(session, part, rows, **kwargs)

    monkeypatch.setattr(db.status_pool, "store_status", refused_second)
    with pytest.raises(RuntimeError, match="refused"):
        recompute_all(store, now=NOW + timedelta(days=3), timezone="UTC", beside=True)
    assert len(written) == 2  # the error surfaced at the second pass's write
    pd.testing.assert_frame_equal(_stored(store)[0], before[0])
    pd.testing.assert_frame_equal(_stored(store)[1], before[1])


def test_a_store_of_few_panels_is_recomputed_in_one_process(demo_copy, monkeypatch) -> None:
    store = demo_copy(NOW)
    monkeypatch.setattr(services.admin, "status_workers", lambda: 2)

    def no_workers(*args, **kwargs):
        raise AssertionError("no worker should start")

    monkeypatch.setattr(db.status_pool, "ProcessPoolExecutor", no_workers)
    assert (
        recompute_all(store, now=NOW, timezone="UTC", beside=True) == 69
    )  # the demo cohort and its showcase patients
