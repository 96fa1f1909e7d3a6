"""Hostile files: refused with a clear reason (never an internal error), the store unchanged."""

from __future__ import annotations

import os
import resource

import pytest
from sqlalchemy import func, select

from db.models import Result
from services.imports import ImportOptions, import_content

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
    summary = import_content(store, "hostile", content, options=ImportOptions(imported_by="test", format=fmt))
    assert summary.error is not None and reason in summary.error
    with store() as session:
        assert session.scalar(select(func.count()).select_from(Result)) == 0


def test_an_identifier_longer_than_the_store_keeps_is_refused_not_cut(store) -> None:
    content = HEADER + b"A" * 1_000_000 + b",2026-01-01T08:00:00Z,wbc,4,10^9/L\n"
    summary = import_content(store, "long.csv", content, options=ImportOptions(imported_by="test"))
    assert summary.accepted == 0
    assert summary.rejected["reason"].tolist() == ["patient_id is longer than 64 characters"]
    quoted = HEADER + b'"' + b"A" * 200_000 + b'",2026-01-01T08:00:00Z,wbc,4,10^9/L\n'
    summary = import_content(store, "quoted.csv", quoted, options=ImportOptions(imported_by="test"))
    assert summary.error is not None and "line 2: cannot be read as CSV" in summary.error


def test_a_utf16_export_with_its_byte_order_mark_is_read(store) -> None:
    text = "patient_id,collected_at,analyte,value,unit\nA1,2026-01-01T08:00:00Z,wbc,4.2,10^9/L\n"
    summary = import_content(
        store, "utf16.csv", text.encode("utf-16"), options=ImportOptions(imported_by="test")
    )
    assert summary.error is None and summary.accepted == 1


def test_a_100_mb_csv_of_junk_lines_keeps_memory_bounded(store, tmp_path) -> None:
    """About 100 MB of unparseable rows: refused row by row, in bounded memory (reported, not timed)."""
    row = b"X," * 5 + b"\n"
    content = HEADER + row * (100_000_000 // len(row))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary = import_content(store, "junk.csv", content, options=ImportOptions(imported_by="test"))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert summary.error is not None and "records cannot be read" in summary.error
    assert "line 2: expected 5 fields as in the header, found 6" in summary.error
    assert grown_mb < 1500, f"peak memory grew by {grown_mb:.0f} MB"
