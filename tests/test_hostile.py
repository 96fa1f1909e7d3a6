"""Hostile files: refused with a clear reason (never an internal error), the store unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from db.models import Result
from services.imports import ImportOptions, import_content
from tests.conftest import ROOT

HEADER = b"patient_id,collected_at,analyte,value,unit\n"


@pytest.mark.parametrize(
    ("content", "fmt", "reason"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "fhir", "nested too deeply"),
        (os.urandom(200_000), None, "not UTF-8 text"),
        ("patient_id,collected_at\nJosé,2026\n".encode("latin-1"), None, "not UTF-8 text"),
        (b"MSH|" + b"\x00" * 100, None, "NUL byte"),
        (b"", None, "the file is empty"),
    ],
    ids=["deep-json", "binary", "latin-1", "nul", "empty"],
)
def test_a_hostile_file_is_refused_with_a_reason_and_nothing_lands(store, content, fmt, reason) -> None:
    summary = import_content(
        store, "hostile", content, options=ImportOptions(imported_by="test", site_timezone="UTC", format=fmt)
    )
    assert summary.error is not None and reason in summary.error
    with store() as session:
        assert session.scalar(select(func.count()).select_from(Result)) == 0


def test_an_identifier_longer_than_the_store_keeps_is_refused_not_cut(store) -> None:
    content = HEADER + b"A" * 1_000_000 + b",2026-01-01T08:00:00Z,wbc,4,10^9/L\n"
    summary = import_content(
        store, "long.csv", content, options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    assert summary.accepted == 0
    assert summary.rejected["reason"].tolist() == ["patient_id is longer than 64 characters"]
    quoted = HEADER + b'"' + b"A" * 200_000 + b'",2026-01-01T08:00:00Z,wbc,4,10^9/L\n'
    summary = import_content(
        store, "quoted.csv", quoted, options=ImportOptions(imported_by="test", site_timezone="UTC")
    )
    assert summary.error is not None and "line 2: cannot be read as CSV" in summary.error


def test_a_utf16_export_with_its_byte_order_mark_is_read(store) -> None:
    text = "patient_id,collected_at,analyte,value,unit\nA1,2026-01-01T08:00:00Z,wbc,4.2,10^9/L\n"
    summary = import_content(
        store,
        "utf16.csv",
        text.encode("utf-16"),
        options=ImportOptions(imported_by="test", site_timezone="UTC"),
    )
    assert summary.error is None and summary.accepted == 1


# Measured in a process of its own, which holds nothing but the file, the store and the code: the peak
# resident memory of this one (``ru_maxrss``) may have been raised by any earlier test.
JUNK_IMPORT = """
import json, resource, sys

from db.store import open_store
from services.imports import ImportOptions, import_content

store = open_store(sys.argv[1], timezone="UTC")
row = b"X," * 5 + b"\\n"
content = b"patient_id,collected_at,analyte,value,unit\\n" + row * (100_000_000 // len(row))
with open("/proc/self/statm") as statm:  # resident now (the peak so far counts the file's making twice)
    resident = int(statm.read().split()[1]) * resource.getpagesize()
options = ImportOptions(imported_by="test", site_timezone="UTC")
summary = import_content(store, "junk.csv", content, options=options)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
print(json.dumps({"error": summary.error, "grown_mb": (peak - resident) / 2**20}))
"""


def test_a_100_mb_csv_of_junk_lines_keeps_memory_bounded(db_url: str, store) -> None:
    """About 100 MB of unparseable rows: refused row by row, in bounded memory (reported, not timed)."""
    run = subprocess.run(
        [sys.executable, "-c", JUNK_IMPORT, db_url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout)
    error, grown_mb = measured["error"], measured["grown_mb"]
    assert error is not None and "records cannot be read" in error
    assert "line 2: expected 5 fields as in the header, found 6" in error
    assert grown_mb < 800, f"peak memory grew by {grown_mb:.0f} MB"
    print(f"peak memory grew by {grown_mb:.0f} MB")
