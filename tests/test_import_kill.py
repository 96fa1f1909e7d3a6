"""A killed import leaves nothing half-written, on both databases; and no CSV makes the parser crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from benchmarks.import_csv import generate
from db.models import ImportBatch, Panel, Patient, Result
from monitor.formats.csv_long import UnusableFile, parse_canonical_csv
from monitor.formats.parsed import RAW_COLUMNS
from monitor.formats.records import normalise_results
from tests.conftest import ROOT


def test_killing_an_import_midway_leaves_the_store_as_it_was(db_url: str, store, tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    generate(big, 400_000)
    env = {**os.environ, "MONITOR_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "import", str(big)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(3.0)
    assert process.poll() is None, "the import finished before it could be killed: make the file larger"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with store() as session:
        for table in (Patient, Panel, Result, ImportBatch):
            assert session.scalar(select(func.count()).select_from(table)) == 0, table.__tablename__
    # and the same file then imports whole
    again = subprocess.run(
        [sys.executable, "-m", "monitor", "import", str(big)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    with store() as session:
        assert session.scalar(select(func.count()).select_from(Result)) == 400_000


cell = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(cell, min_size=0, max_size=12), max_size=6), st.sampled_from([",", "\n", '"']))
def test_no_csv_makes_the_parser_crash(rows, extra) -> None:
    header = "patient_id,collected_at,analyte,value,unit,ref_low,ref_high,lab,accession,status\n"
    text = header + "\n".join(",".join(row) for row in rows) + extra
    try:
        parsed = parse_canonical_csv(text)
    except UnusableFile:
        return
    assert list(parsed.records.columns) == list(RAW_COLUMNS)
    out = normalise_results(parsed.records)
    assert len(out.results) + len(out.rejected) <= len(parsed.records)
