"""A killed import leaves nothing half-written, on both databases; and no CSV makes the parser crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from benchmarks.import_csv import generate
from db.models import Base, Result
from monitor.formats.csv_long import UnusableFile, parse_canonical_csv
from monitor.formats.parsed import RAW_COLUMNS
from monitor.formats.records import normalise_results
from services.imports import ImportOptions, import_path
from tests.conftest import DATA, ROOT

# The import killed below, in a process of its own: read in small blocks and pieces, so that a small file
# has many, it reports the first piece written (inside its still open transaction), then waits to be killed.
IMPORT_UNTIL_KILLED = """
import os, sys, time
from pathlib import Path

import monitor.formats.pieces as pieces
from db.store import open_store
from services.imports import ImportOptions, import_path

url, path, marker = sys.argv[1:]
pieces.BLOCK_BYTES, pieces.PIECE_CHARS = 16_384, 20_000


def report(done, total):
    Path(marker + ".part").write_text(f"{done} {total}")
    os.replace(marker + ".part", marker)  # seen whole or not at all
    time.sleep(3600)


store = open_store(url, timezone="UTC")
options = ImportOptions(imported_by="test", site_timezone="UTC")
import_path(store, Path(path), options=options, progress=report)
sys.exit("the import finished without reporting a piece")
"""


def _everything(store) -> dict[str, list[tuple]]:
    """Every row of every table, in a comparable order."""
    with store() as session:
        return {
            table.name: sorted(map(tuple, session.execute(select(table)).all()), key=repr)
            for table in Base.metadata.sorted_tables
        }


def test_killing_an_import_midway_leaves_the_store_as_it_was(db_url: str, store, tmp_path: Path) -> None:
    env = {**os.environ, "MONITOR_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    assert (
        import_path(
            store, DATA / "canonical-good.csv", options=ImportOptions(imported_by="test", site_timezone="UTC")
        ).accepted
        > 0
    )
    before = _everything(store)
    assert before[Result.__tablename__], "the store should hold an earlier import"
    big, marker, log = tmp_path / "big.csv", tmp_path / "midway", tmp_path / "import.log"
    generate(big, 20_000)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", IMPORT_UNTIL_KILLED, db_url, str(big), str(marker)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        # Generous: only a machine busy beyond reason takes minutes to write 20,000 characters of a file.
        deadline = time.monotonic() + 600
        while not marker.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the import never reported a piece written; its output:\n{log.read_text()}")
            time.sleep(0.05)
        done, total = map(int, marker.read_text().split())
        assert 0 < done < total, "the import was to be killed with part of the file written"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    assert _everything(store) == before
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
        assert (
            session.scalar(select(func.count()).select_from(Result))
            == len(before[Result.__tablename__]) + 20_000
        )


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
