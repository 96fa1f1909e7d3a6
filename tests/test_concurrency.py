"""Four imports at once, of overlapping files, on both stores: nothing lost, nothing doubled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import ImportBatch, Panel, Patient, Result
from tests.conftest import ROOT

HEADER = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"


def _file(path: Path, patients: range, days: range) -> set[tuple[str, int, str]]:
    """A canonical CSV of WBC and ANC for these patients on these days; returns what it holds."""
    rows, keys = [HEADER], set()
    for patient in patients:
        for day in days:
            for analyte, value in (("wbc", 3.0 + (patient + day) % 50 / 10), ("anc", 1.0 + day % 30 / 10)):
                rows.append(
                    f"C{patient:04d},2026-01-{1 + day % 28:02d}T08:00:00Z,{analyte},{value:.1f},10^9/L,"
                    f"1.0,11.0,LAB,A{patient}-{day},final\n"
                )
                keys.add((f"C{patient:04d}", day, analyte))
    path.write_text("".join(rows))
    return keys


def start_imports(paths: list[Path], env: dict[str, str]) -> list[subprocess.Popen]:
    """One `python -m monitor import` process per file, all started at once."""
    return [
        subprocess.Popen(
            [sys.executable, "-m", "monitor", "import", str(path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in paths
    ]


def _serve_meanwhile(
    processes: list[subprocess.Popen], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[bool, int]]:
    """Render the worklist (AppTest, caches cleared each time) until every import has finished; return
    (imports still running?, patients listed) for each rendering."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from db.accounts import Viewer
    from tests.test_dashboard import _account

    monkeypatch.setenv("MONITOR_DATABASE_URL", db_url)
    monkeypatch.setenv("MONITOR_SEED_DEMO", "0")
    _account(Viewer("admin", "admin", None))  # the dashboard reads the account on every run
    served = []
    while True:
        running = any(p.poll() is None for p in processes)
        st.cache_data.clear()
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120)
        at.session_state["viewer"] = Viewer("admin", "admin", None)
        at.run()
        assert not at.exception, at.exception
        served.append((running, len(at.dataframe[0].value) if at.dataframe else 0))
        if not running:
            return served


def test_four_concurrent_imports_of_overlapping_files(
    db_url: str, store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two files share half their patients; two more are exact copies of the first two.
    first = _file(tmp_path / "a.csv", range(0, 120), range(0, 20))
    second = _file(tmp_path / "b.csv", range(60, 180), range(0, 20))
    (tmp_path / "c.csv").write_text((tmp_path / "a.csv").read_text())
    (tmp_path / "d.csv").write_text((tmp_path / "b.csv").read_text())
    env = {**os.environ, "MONITOR_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    processes = start_imports([tmp_path / name for name in ("a.csv", "b.csv", "c.csv", "d.csv")], env)
    served = _serve_meanwhile(processes, db_url, monkeypatch)
    outcomes = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in processes]
    for code, out, err in outcomes:
        assert code == 0, f"exit {code}: {out} {err}"
    expected = first | second
    with store() as session:
        results = session.scalar(select(func.count()).select_from(Result))
        distinct = session.scalar(
            select(func.count()).select_from(
                select(Result.panel_id, Result.analyte, Result.version).distinct().subquery()
            )
        )
        patients = session.scalar(select(func.count()).select_from(Patient))
        panels = session.scalar(select(func.count()).select_from(Panel))
        accepted = session.scalar(select(func.sum(ImportBatch.accepted)))
    sent = 2 * (len(first) + len(second))
    figures = f"records sent: {sent}, distinct: {len(expected)}, stored: {results}"
    print(f"{figures}, duplicates: {results - distinct}")
    assert results == distinct == len(expected)  # every record once: nothing lost, nothing doubled
    assert patients == 180 and panels == 180 * 20
    # Whichever import came first stored a record; the others found it there ("unchanged").
    assert accepted == len(expected)
    # The dashboard kept serving while the imports ran, and only ever showed whole files: no patients,
    # one file's 120, or both files' 180 (never part of a file).
    during = [listed for running, listed in served if running]
    print(f"worklist rendered {len(served)} times, {len(during)} while importing: {[n for _, n in served]}")
    assert len(during) >= 2
    assert {listed for _, listed in served} <= {0, 120, 180} and served[-1][1] == 180
